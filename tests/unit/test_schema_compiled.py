"""The compiled check (`runtime.schema.compile_check`) gives jsonschema's verdict, always.

The gate accepts a call on the compiled check's "valid" and asks jsonschema
otherwise, so a check that said "valid" where jsonschema says "invalid" would
let a bad call through. Here both judge the schemas `@tool` generates for many
parameter shapes, on instances built to sit on and around each schema's edges;
tests/conformance does the same over the JSON Schema Test Suite.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tools as builtin_tools
from runtime import ToolCallRequest, ToolRegistry, tool
from runtime.arguments import ArgumentGate, ArgumentsAccepted, Rejection
from runtime.schema import compile_check, schema_validator
from runtime.tools import Tool


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


class Address(pydantic.BaseModel):
    street: str
    zip_code: Annotated[str, pydantic.Field(pattern=r"^\d{5}$")]
    unit: int | None = None


class Line(pydantic.BaseModel):
    sku: Annotated[str, pydantic.Field(min_length=3, max_length=12)]
    qty: Annotated[int, pydantic.Field(ge=1, le=99)] = 1
    price: Annotated[float, pydantic.Field(gt=0, multiple_of=0.01)] = 1.0


@tool
def scalars(
    count: int,
    ratio: float,
    flag: bool,
    name: str,
    nothing: None = None,
    mode: Literal["fast", "slow", 3] = "fast",
) -> str:
    """Scalars of every JSON type."""
    return name


@tool
def bounded(
    small: Annotated[int, pydantic.Field(ge=-5, lt=5)],
    step: Annotated[int, pydantic.Field(multiple_of=3)] = 0,
    share: Annotated[float, pydantic.Field(gt=0.0, le=1.0)] = 0.5,
    code: Annotated[str, pydantic.Field(pattern=r"^[A-Z]{2}-\d+$", max_length=8)] = "AB-1",
    tags: Annotated[list[str], pydantic.Field(min_length=1, max_length=3)] = ["a"],  # noqa: B006
) -> str:
    """Bounds on numbers, strings and lists."""
    return code


@tool
def shapes(
    colour: Colour,
    size: Size,
    when: dt.datetime,
    day: dt.date,
    ident: uuid.UUID,
    scores: dict[str, float],
    pair: tuple[int, str],
    unique: set[int],
    either: int | str,
    maybe: list[int] | None = None,
) -> str:
    """Enums, formats, maps, tuples, sets and unions."""
    return str(colour)


@tool
def nested(address: Address, lines: list[Line], backup: Address | None = None) -> str:
    """Nested models (inlined by @tool), optional ones and lists of them."""
    return address.street


GATE_TOOLS: list[Tool] = [
    scalars,
    bounded,
    shapes,
    nested,
    *ToolRegistry.from_module(builtin_tools),
]


# For each format: values that conform, then values that do not.
FORMAT_SAMPLES = {
    "date-time": (["2024-01-01T12:00:00Z", "2016-12-31T23:59:60Z"], ["2024-01-01T12:00:00"]),
    "date": (["2024-02-29", "2023-12-31"], ["2023-02-29", "2024-13-01", "2024-1-1"]),
    "uuid": (["123e4567-e89b-12d3-a456-426614174000"], ["123e4567-e89b-12d3-a456", "x" * 36]),
    "email": (["a@b.example", "a@[127.0.0.1]"], ["not-an-email", "a@b@c"]),
}
# Strings Python's `re` would take for digits or an end of input, where ECMA-262 does not.
PATTERN_NEAR_MISSES = ["12345", "12345\n", "١٢٣٤٥", "AB-1", "AB-1\n", "AB-١"]


def _interesting(schema: Any) -> Iterator[Any]:
    """Values on and around the edges `schema` draws, from anywhere in it."""
    if isinstance(schema, list):
        for item in schema:
            yield from _interesting(item)
        return
    if not isinstance(schema, dict):
        return
    for key in ("enum", "examples"):
        if isinstance(schema.get(key), list):
            yield from schema[key]
    for key in ("const", "default"):
        if key in schema:
            yield schema[key]
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"):
        bound = schema.get(key)
        if isinstance(bound, int | float) and not isinstance(bound, bool):
            yield from (bound, bound - 1, bound + 1, bound + 0.5, float(bound), -bound, bound * 2)
    for key in ("minLength", "maxLength"):
        bound = schema.get(key)
        if isinstance(bound, int) and bound < 100:
            yield from ("x" * bound, "x" * (bound + 1), "1" * max(bound - 1, 0))
    if "pattern" in schema:
        yield from ("AB-12", "12345", "1234", "12345\n", "١٢٣٤٥", "AB-123456")
    if "format" in schema:
        yield from (
            "2024-02-29",
            "2023-02-29",
            "2024-01-01T12:00:00Z",
            "2024-01-01T12:00:00",
            "12:00:00Z",
            "a@b.example",
            "not-an-email",
            "123e4567-e89b-12d3-a456-426614174000",
            "123e4567-e89b-12d3-a456",
        )
    for value in schema.values():
        yield from _interesting(value)


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def _instances(schema: Any) -> st.SearchStrategy[Any]:
    """Instances of `schema`: a third meant to be valid, the rest with a few stray parts.

    Valid instances and ones wrong in a single place are what tell a check
    that skips a keyword from one that applies it.
    """
    return st.sampled_from([0, 6, 16]).flatmap(lambda odds: _near(schema, 0, odds))


def _mostly(
    good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], odds: int
) -> st.SearchStrategy[Any]:
    """`bad` once in `odds` draws (never with odds 0), else `good`."""
    if not odds:
        return good
    return st.integers(1, odds).flatmap(lambda n: bad if n == 1 else good)


def _near(schema: Any, depth: int, odds: int) -> st.SearchStrategy[Any]:
    """Values that conform to `schema`, but for a stray one once in `odds` parts."""
    if not isinstance(schema, dict) or depth > 6:
        return _JSON
    stray = st.sampled_from(list(_interesting(schema)) or [None]) | _SCALARS
    return _mostly(_fitting(schema, depth, odds), stray, odds * 2)


def _fitting(schema: dict[str, Any], depth: int, odds: int) -> st.SearchStrategy[Any]:
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return st.one_of([_near(sub, depth + 1, odds) for sub in schema[key]])
    kinds = schema.get("type", ["object", "array", "string", "number", "null"])
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return st.one_of([_of_type(kind, schema, depth, odds) for kind in kinds])


def _of_type(kind: str, schema: dict[str, Any], depth: int, odds: int) -> st.SearchStrategy[Any]:
    if kind == "object":
        properties = schema.get("properties", {})
        required = [name for name in schema.get("required", []) if name in properties]
        optional = {
            k: _near(v, depth + 1, odds) for k, v in properties.items() if k not in required
        }
        extra = schema.get("additionalProperties", True)
        fixed = st.fixed_dictionaries(
            {name: _near(properties[name], depth + 1, odds) for name in required}, optional=optional
        )
        if isinstance(extra, dict):
            more = st.dictionaries(st.text(max_size=4), _near(extra, depth + 1, odds), max_size=3)
            return st.builds(lambda a, b: {**b, **a}, fixed, more)
        return fixed
    if kind == "array":
        prefix = [_near(sub, depth + 1, odds) for sub in schema.get("prefixItems", [])]
        rest = _near(schema.get("items", {}), depth + 1, odds)
        low = max(schema.get("minItems", 0) - len(prefix), 0)
        high = max(schema.get("maxItems", low + 3) - len(prefix), 0)
        lists = _mostly(
            st.lists(rest, min_size=low, max_size=high),
            st.lists(rest, min_size=max(low - 1, 0), max_size=high + 1),
            odds,
        )
        if prefix:
            return st.builds(lambda head, tail: [*head, *tail], st.tuples(*prefix), lists)
        return lists
    if kind == "string":
        if "format" in schema:
            good, bad = FORMAT_SAMPLES.get(schema["format"], (["x"], ["y"]))
            return _mostly(st.sampled_from(good), st.sampled_from(bad), odds)
        if "pattern" in schema:
            ascii_match = st.from_regex(
                schema["pattern"], alphabet=st.characters(max_codepoint=126)
            )
            return _mostly(ascii_match, st.from_regex(schema["pattern"]), odds)
        low, high = schema.get("minLength", 0), schema.get("maxLength", 12)
        return _mostly(
            st.text(min_size=low, max_size=min(high, low + 20)),
            st.text(min_size=max(low - 1, 0), max_size=min(high + 1, low + 21)),
            odds,
        )
    if kind in ("number", "integer"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", -100))
        high = schema.get("maximum", schema.get("exclusiveMaximum", 100))
        step = schema.get("multipleOf", 1)
        inside = st.integers(math.ceil(low / step), math.floor(high / step)).map(lambda k: k * step)
        edges = [e for e in _interesting(schema) if isinstance(e, int | float)]
        outside = st.sampled_from(edges or [0.5]) | st.floats(-1e3, 1e3)
        return _mostly(inside, outside, odds)
    if kind == "boolean":
        return st.booleans()
    return st.none()


@pytest.mark.parametrize("gate_tool", GATE_TOOLS, ids=lambda t: t.name)
def test_every_gate_tool_schema_compiles(gate_tool: Tool) -> None:
    assert compile_check(schema_validator(gate_tool.parameters)) is not None


@pytest.mark.parametrize("gate_tool", GATE_TOOLS, ids=lambda t: t.name)
def test_compiled_and_jsonschema_verdicts_agree(gate_tool: Tool) -> None:
    validator = schema_validator(gate_tool.parameters)
    check = compile_check(validator)
    assert check is not None
    seen = {True: 0, False: 0}

    @settings(max_examples=500, deadline=None, database=None)
    @given(_instances(gate_tool.parameters))
    def agree(instance: Any) -> None:
        expected = validator.is_valid(instance)
        assert check(instance) is expected, json.dumps(instance, default=str)
        seen[expected] += 1

    agree()
    for edge in _interesting(gate_tool.parameters):
        assert check({"x": edge}) is validator.is_valid({"x": edge})
    # Both verdicts must come up often, or the agreement says little.
    assert min(seen.values()) >= 25, seen


def test_the_verdicts_agree_on_valid_calls_of_every_gate_tool() -> None:
    calls = {
        "scalars": {"count": 1, "ratio": 0.5, "flag": True, "name": "n", "mode": 3},
        "bounded": {"small": -5, "step": 9, "share": 1.0, "code": "XY-99", "tags": ["a", "b"]},
        "shapes": {
            "colour": "red",
            "size": 2,
            "when": "2024-01-01T12:00:00Z",
            "day": "2024-02-29",
            "ident": "123e4567-e89b-12d3-a456-426614174000",
            "scores": {"a": 1.5},
            "pair": [1, "x"],
            "unique": [1, 2],
            "either": "x",
            "maybe": None,
        },
        "nested": {
            "address": {"street": "Main", "zip_code": "12345"},
            "lines": [{"sku": "abc", "qty": 2, "price": 0.5}],
        },
    }
    for name, arguments in calls.items():
        gate_tool = next(t for t in GATE_TOOLS if t.name == name)
        validator = schema_validator(gate_tool.parameters)
        check = compile_check(validator)
        assert check is not None
        assert validator.is_valid(arguments), name
        assert check(arguments), name


@pytest.mark.parametrize(
    "schema",
    [
        {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"},
        {"unevaluatedProperties": False, "properties": {"a": {}}},
        {"$id": "https://example.com/s", "type": "object"},
        {"$defs": {"a": {"$anchor": "a"}}, "$ref": "#a"},
        {"$ref": "https://example.com/other.json"},
        {"properties": {"a": {"$schema": "http://json-schema.org/draft-07/schema#"}}},
    ],
)
def test_what_only_jsonschema_reads_is_left_to_it(schema: dict[str, Any]) -> None:
    assert compile_check(schema_validator(schema)) is None


def test_local_references_compile_including_recursive_ones() -> None:
    schema = {
        "$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}},
        "$ref": "#/$defs/node",
        "required": ["next"],
    }
    validator = schema_validator(schema)
    check = compile_check(validator)
    assert check is not None
    for instance in ({"next": {}}, {"next": {"next": {"next": 1}}}, {}, {"next": []}):
        assert check(instance) is validator.is_valid(instance)


def test_a_compiled_check_that_fails_leaves_the_verdict_to_jsonschema() -> None:
    gate = ArgumentGate(ToolRegistry([scalars]))
    validator, _ = gate._prepared(scalars)

    def broken(instance: Any) -> bool:
        raise RuntimeError("bug")

    gate._validators[scalars.name] = (validator, broken)
    good = '{"count": 1, "ratio": 0.5, "flag": true, "name": "n"}'
    accepted = gate.check(ToolCallRequest(id="c1", name="scalars", arguments=good))
    assert isinstance(accepted, ArgumentsAccepted)
    bad = '{"count": "1", "ratio": 0.5, "flag": true, "name": "n"}'
    rejected = gate.check(ToolCallRequest(id="c2", name="scalars", arguments=bad))
    assert isinstance(rejected, Rejection) and "$.count" in rejected.error.message


def test_a_compiled_no_is_only_a_hint_jsonschema_decides() -> None:
    gate = ArgumentGate(ToolRegistry([scalars]))
    validator, _ = gate._prepared(scalars)
    gate._validators[scalars.name] = (validator, lambda instance: False)
    good = '{"count": 1, "ratio": 0.5, "flag": true, "name": "n"}'
    assert isinstance(
        gate.check(ToolCallRequest(id="c1", name="scalars", arguments=good)), ArgumentsAccepted
    )
