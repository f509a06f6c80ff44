"""The pydantic-free binder must give exactly what pydantic's model gives, or stand aside."""

from __future__ import annotations

import datetime
import enum
import subprocess
import sys
import textwrap
from typing import Annotated, Any, Literal, Optional, Union

import pydantic
import pytest

from runtime.binding import converter
from runtime.tools import Tool, tool


class Color(enum.Enum):
    RED = "red"


class Point(pydantic.BaseModel):
    x: int


def _pydantic_value(annotation: Any, value: Any) -> Any:
    model = pydantic.create_model("M", v=(annotation, ...))
    return model.model_validate({"v": value}).v


def _same_shape(a: Any, b: Any) -> bool:
    """Equal values of exactly the same types, all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_shape(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_shape(a[k], b[k]) for k in a)
    return bool(a == b)


# (annotation, JSON values that pass its JSON Schema)
PLAIN_CASES: list[tuple[Any, list[Any]]] = [
    (int, [0, 7, -3, 7.0, 1e3, 2**70]),
    (float, [0, 7, 7.5, -2, 2**60, 1e300]),
    (str, ["", "km", "ünï"]),
    (bool, [True, False]),
    (Any, [1, "x", None, [1, 2.0], {"a": [1]}]),
    (list, [[1, "a"], []]),
    (dict, [{"a": 1}, {}]),
    (list[int], [[1, 2.0, 3], []]),
    (list[float], [[1, 2.5, 3], []]),
    (dict[str, float], [{"a": 1, "b": 2.5}]),
    (dict[str, list[int]], [{"a": [1, 2.0]}]),
    (Optional[float], [None, 3, 3.5]),  # noqa: UP045
    (int | None, [None, 4.0, 4]),
    (Literal["km", "mi"], ["km", "mi"]),
    (Annotated[int, pydantic.Field(ge=1, le=10)], [1, 5.0, 10]),
    (Annotated[float, pydantic.Field(description="a ratio", gt=0)], [1, 0.5]),
    (Annotated[list[float], pydantic.Field(min_length=1)], [[1, 2]]),
]


@pytest.mark.parametrize(("annotation", "values"), PLAIN_CASES)
def test_plain_conversion_matches_pydantic(annotation: Any, values: list[Any]) -> None:
    convert = converter(annotation)
    assert convert is not None, f"{annotation!r} should be plain"
    for value in values:
        expected = _pydantic_value(annotation, value)
        got = convert(value)
        assert _same_shape(got, expected), (annotation, value, got, expected)


NOT_PLAIN = [
    Color,
    Point,
    datetime.datetime,
    datetime.date,
    tuple[int, int],
    set[str],
    Union[int, str],  # noqa: UP007
    int | float,
    Literal[1, 2],
    dict[int, str],
    Annotated[int, pydantic.AfterValidator(lambda v: v * 2)],
    Annotated[str, pydantic.Field(alias="other")],
    Annotated[int, pydantic.Field(strict=True)],
    list[Point],
    Optional[Color],  # noqa: UP045
]


@pytest.mark.parametrize("annotation", NOT_PLAIN, ids=repr)
def test_types_that_need_pydantic_are_left_to_it(annotation: Any) -> None:
    assert converter(annotation) is None


def test_a_tool_with_plain_parameters_binds_without_its_model() -> None:
    @tool
    def convert(value: float, unit: Literal["km", "mi"], tags: list[str] | None = None) -> float:
        """Convert.

        Args:
            value: How much.
            unit: Which unit.
            tags: Labels.
        """
        return value

    assert convert.plain_arguments is not None
    bound = convert.bind({"value": 12, "unit": "km"})
    assert bound == {"value": 12.0, "unit": "km"} and type(bound["value"]) is float


def test_a_tool_with_a_model_parameter_still_binds_through_pydantic() -> None:
    @tool
    def place(point: Point, color: Color) -> str:
        """Place a point."""
        return f"{point.x} {color.value}"

    assert place.plain_arguments is None
    bound = place.bind({"point": {"x": 3}, "color": "red"})
    assert bound == {"point": Point(x=3), "color": Color.RED}


def test_deferred_schemas_skip_the_schema_and_build_the_model_on_first_need() -> None:
    # a fresh interpreter: deferring is a one-way switch for the process (sandbox workers)
    script = textwrap.dedent(
        """
        import enum, sys, json
        import runtime.tools as tools
        tools.defer_schemas()

        class Color(enum.Enum):
            RED = "red"

        @tools.tool(examples=[("paint it", {"color": "red"})])
        def paint(color: Color, times: int = 1) -> str:
            '''Paint.'''
            return f"{color.value} x{times}"

        @tools.tool
        def add(a: float, b: float) -> float:
            '''Add.'''
            return a + b

        before = paint.args_model is None
        bound = paint.bind({"color": "red", "times": 2.0})
        print(json.dumps({
            "parameters": paint.parameters, "examples": len(paint.examples),
            "deferred_model": before, "color_is_enum": isinstance(bound["color"], Color),
            "times": bound["times"], "add": add.invoke_sync({"a": 1, "b": 2}),
            "add_model": add.args_model is None,
            "jsonschema_imported": "jsonschema" in sys.modules,
        }))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    import json

    facts = json.loads(out)
    assert facts == {
        "parameters": {},
        "examples": 0,
        "deferred_model": True,
        "color_is_enum": True,
        "times": 2,
        "add": 3.0,
        "add_model": True,
        "jsonschema_imported": False,
    }


def test_tools_built_normally_keep_their_checks() -> None:
    assert isinstance(tool(lambda_free), Tool)
    with pytest.raises(TypeError):

        @tool(examples=[("paint", {"times": "x"})])
        def bad(times: int) -> int:
            """Bad example."""
            return times


def lambda_free(a: int) -> int:
    """A plain function."""
    return a


@pytest.mark.parametrize(
    "annotation",
    [
        Annotated[str, pydantic.StringConstraints(strip_whitespace=True)],
        Annotated[str, pydantic.StringConstraints(to_lower=True)],
        Annotated[str, pydantic.BeforeValidator(str.strip)],
        Annotated[float, pydantic.Field(allow_inf_nan=False), pydantic.PlainValidator(float)],
    ],
    ids=repr,
)
def test_metadata_that_may_transform_a_value_is_left_to_pydantic(annotation: Any) -> None:
    assert converter(annotation) is None


def test_pattern_and_length_checks_stay_plain() -> None:
    assert converter(Annotated[str, pydantic.Field(pattern=r"^\d{5}$", max_length=5)]) is not None
    assert converter(Annotated[list[int], pydantic.Field(min_length=1, max_length=3)]) is not None
