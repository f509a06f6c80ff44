"""Natural synthesis from schemas alone: values, wording, seeds, odd schemas, the catalog."""

from __future__ import annotations

import json
import random
import re
import types
from typing import Annotated, Any, Literal

import pydantic
import pytest

from runtime import tool
from runtime.arguments import ArgumentGate, ArgumentsAccepted
from runtime.calls import ToolCallRequest
from runtime.finetune.general import HELD_OUT_LOOKALIKES, describe, general_dataset
from runtime.finetune.natural import (
    NaturalPhraser,
    ParamProfile,
    ToolProfile,
    description_examples,
    split_name,
)
from runtime.finetune.synth import SynthConfig, SynthesisError, Synthesizer, tools_in
from runtime.finetune.tool_catalog import catalog_tools, random_modules
from runtime.tools import ToolDefinitionError, ToolExample, ToolRegistry


def _m(example: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation without the optional leading system prompt."""
    messages = list(example["messages"])
    return messages[1:] if messages and messages[0]["role"] == "system" else messages


class Point(pydantic.BaseModel):
    x: float
    y: float


Huge = Literal[tuple(f"item_{i}" for i in range(500))]  # type: ignore[valid-type]


def _registry(*functions: Any) -> ToolRegistry:
    return ToolRegistry(functions)


@tool
def convert(
    value: float,
    from_unit: Literal["km", "mi", "kg", "lb"],
    to_unit: Literal["km", "mi", "kg", "lb"],
) -> float:
    """Convert a quantity from one unit to another.

    Args:
        value: The amount.
        from_unit: Unit of the amount, for example km, mi, kg.
        to_unit: Unit wanted.
    """
    return value


@tool
def remind(text: str, minutes: int, urgent: bool = False) -> str:
    """Create a reminder.

    Args:
        text: What to be reminded about.
        minutes: In how many minutes.
        urgent: Ring loudly.
    """
    return "ok"


@tool
def get_order(order_id: str) -> dict[str, str]:
    """Look up an order by its number.

    Args:
        order_id: Order number, e.g. SO-10482.
    """
    return {"id": order_id}


def _calls(example: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (c["function"]["name"], json.loads(c["function"]["arguments"]))
        for m in _m(example)
        for c in m.get("tool_calls") or []
    ]


def _all_valid(registry: Any, examples: list[dict[str, Any]]) -> None:
    gate = ArgumentGate(registry)
    for example in examples:
        for name, arguments in _calls(example):
            checked = gate.check(ToolCallRequest("c", name, json.dumps(arguments)))
            assert isinstance(checked, ArgumentsAccepted), (_m(example)[0], checked)


def test_names_and_descriptions_become_words() -> None:
    assert split_name("getWeatherNow") == ["get", "weather", "now"]
    assert split_name("from_unit") == ["from", "unit"]
    assert description_examples("Unit, for example km, mi, kg.") == ["km", "mi", "kg"]
    assert description_examples("Flight number, e.g. 'BA117'.") == ["BA117"]
    act = ToolProfile.of("get_weather", "Gets the current weather for a city.")
    assert (act.verb, act.obj, act.getter) == ("get", "the current weather", True)
    clause = ToolProfile.of("track_package", "Look up where a parcel is.")
    assert clause.verb == "look up" and clause.obj == "package"
    bare = ToolProfile.of("ping", "")
    assert bare.verb and bare.obj


@pytest.mark.parametrize(
    ("name", "schema", "kind", "prep"),
    [
        ("from_unit", {"type": "string", "enum": ["km", "mi"]}, "enum", "from"),
        ("to_currency", {"type": "string", "enum": ["USD"]}, "enum", "to"),
        ("order_id", {"type": "string"}, "id", None),
        ("recipient", {"type": "string"}, "person", "to"),
        ("city", {"type": "string"}, "place", "in"),
        ("check_in", {"type": "string", "format": "date"}, "date", "on"),
        ("message", {"type": "string"}, "text", None),
        ("max_results", {"type": "integer"}, "count", None),
        ("minutes", {"type": "integer"}, "number", None),
        ("tags", {"type": "array", "items": {"type": "string"}}, "list", None),
    ],
)
def test_parameter_kinds(name: str, schema: dict[str, Any], kind: str, prep: str | None) -> None:
    profile = ParamProfile.of(name, schema, True)
    assert profile.kind == kind
    assert profile.prep == prep


def test_requests_place_values_like_people_and_never_spell_parameter_names() -> None:
    registry = _registry(convert, remind, get_order)
    examples = Synthesizer(registry, None, SynthConfig(per_tool=30, seed=3)).generate()
    _all_valid(registry, examples)
    singles = [e for e in examples if e["metadata"]["kind"] in ("single", "trajectory")]
    for example in singles:
        request = _m(example)[0]["content"]
        assert "from_unit" not in request and "to_unit" not in request
        assert "order_id" not in request
        for _, arguments in _calls(example):
            for name, value in arguments.items():
                if name in ("from_unit", "to_unit"):
                    # a from/to pair is only told apart by its preposition
                    direction = name.split("_")[0]
                    assert re.search(rf"\b{direction} {value}\b", request), request
                elif isinstance(value, str):
                    assert value in request, (value, request)
    # no description text is ever copied in as a value
    for example in examples:
        for _, arguments in _calls(example):
            assert "What to be reminded about" not in json.dumps(arguments)
    # optional arguments are mostly left out, as people do
    urgent = sum("urgent" in args for e in singles for n, args in _calls(e) if n == "remind")
    reminders = sum(1 for e in singles for n, _ in _calls(e) if n == "remind")
    assert 0 < urgent < reminders / 2


def test_no_tool_examples_include_near_misses_and_questions_for_missing_values() -> None:
    registry = _registry(convert, remind, get_order)
    examples = Synthesizer(registry, None, SynthConfig(per_tool=80, seed=1)).generate()
    why = [e["metadata"].get("why") for e in examples if e["metadata"]["kind"] == "no_tool"]
    assert why.count("near_miss") > 5 and why.count("missing_value") > 5 and why.count("chat") > 5
    for example in examples:
        if example["metadata"].get("why") == "missing_value":
            assert "?" in _m(example)[1]["content"]


def test_tool_and_no_tool_requests_share_styles() -> None:
    registry = _registry(convert, remind, get_order)
    examples = Synthesizer(registry, None, SynthConfig(per_tool=60, seed=2)).generate()

    def lower_share(kind_is_tool: bool) -> float:
        texts = [
            _m(e)[0]["content"]
            for e in examples
            if (e["metadata"]["kind"] != "no_tool") == kind_is_tool
        ]
        return sum(t[:1].islower() for t in texts) / len(texts)

    assert abs(lower_share(True) - lower_share(False)) < 0.35


def test_same_tool_twice_in_one_request() -> None:
    registry = _registry(get_order)
    examples = Synthesizer(registry, None, SynthConfig(per_tool=20, seed=0)).generate()
    doubles = [e for e in examples if e["metadata"]["kind"] == "parallel"]
    assert doubles
    for example in doubles:
        (a_name, a), (b_name, b) = _calls(example)
        assert a_name == b_name == "get_order" and a != b
        request = _m(example)[0]["content"]
        assert request.index(a["order_id"]) < request.index(b["order_id"])


def test_seed_examples_from_the_decorator_and_the_docstring() -> None:
    @tool(examples=[("remind me in 20 minutes to call Sam", {"text": "call Sam", "minutes": 20})])
    def set_reminder(text: str, minutes: int) -> str:
        """Set a reminder.

        Args:
            text: What to be reminded about.
            minutes: Minutes from now.

        Examples:
            ping me in 5 minutes about the oven -> {"text": "the oven", "minutes": 5}
        """
        return "ok"

    assert set_reminder.examples == (
        ToolExample("remind me in 20 minutes to call Sam", {"text": "call Sam", "minutes": 20}),
        ToolExample("ping me in 5 minutes about the oven", {"text": "the oven", "minutes": 5}),
    )
    config = SynthConfig(per_tool=40, seed=0, seed_rate=0.5)
    examples = Synthesizer(_registry(set_reminder), None, config).generate()
    seeded = [
        e
        for e in examples
        if e["metadata"]["kind"] == "single"
        and re.search(r"(remind me|ping me) in", _m(e)[0]["content"], re.I)
    ]
    assert len(seeded) > 5
    for example in seeded:
        (_, arguments), *_ = _calls(example)
        assert str(arguments["minutes"]) in _m(example)[0]["content"]
    assert len({json.dumps(_calls(e)) for e in seeded}) > 3  # values substituted


def test_seed_examples_are_validated_against_the_schema() -> None:
    with pytest.raises(ToolDefinitionError, match="do not match the schema"):

        @tool(examples=[{"request": "remind me", "arguments": {"minutes": "soon"}}])
        def bad(minutes: int) -> int:
            """Remind."""
            return minutes

    with pytest.raises(ToolDefinitionError, match="must be a JSON object"):

        @tool
        def worse(minutes: int) -> int:
            """Remind.

            Examples:
                remind me -> not json
            """
            return minutes


def test_odd_schemas_give_valid_calls_or_a_clear_error() -> None:
    module = types.ModuleType("odd_tools")

    @tool
    def no_docs(a: int, b: str) -> str:
        return f"{a}{b}"

    @tool
    def no_params() -> str:
        """Say hello."""
        return "hello"

    @tool
    def nested(
        rows: list[list[int]],
        shape: Point | list[float],
        mode: Annotated[str, pydantic.Field(pattern=r"^[a-z]{3}$")],
    ) -> int:
        """Sum rows.

        Args:
            rows: Rows of numbers.
            shape: A point or a vector.
            mode: Three letters.
        """
        return 0

    @tool
    def pick(choice: Huge) -> str:  # type: ignore[valid-type]
        """Pick one of many.

        Args:
            choice: Which item.
        """
        return str(choice)

    for item in (no_docs, no_params, nested, pick):
        setattr(module, item.name, item)
    registry = ToolRegistry.from_module(module)
    examples = Synthesizer(registry, None, SynthConfig(per_tool=10, seed=0)).generate()
    assert tools_in(examples) == {"no_docs", "no_params", "nested", "pick"}
    _all_valid(registry, examples)
    with pytest.raises(SynthesisError, match="no tools"):
        Synthesizer(ToolRegistry(), None, SynthConfig())


def test_catalog_modules_are_varied_reproducible_and_exclude_held_out_lookalikes() -> None:
    tools = catalog_tools()
    assert len(tools) >= 70
    assert len({t.domain for t in tools}) >= 20
    first = random_modules(30, seed=1, exclude=HELD_OUT_LOOKALIKES)
    again = random_modules(30, seed=1, exclude=HELD_OUT_LOOKALIKES)
    assert [[t.name for t in m] for m in first] == [[t.name for t in m] for m in again]
    names = {t.name for m in first for t in m}
    assert len(names) > 40
    assert not any(look in name for name in names for look in HELD_OUT_LOOKALIKES)


def test_general_dataset_calls_validate_against_their_own_module() -> None:
    import jsonschema

    examples = general_dataset(12, per_tool=3, seed=2)
    facts = describe(examples)
    assert facts["kinds"]["no_tool"] > 0 and facts["kinds"]["parallel"] > 0
    absent = [e for e in examples if e["metadata"].get("why") == "absent_tool"]
    assert absent
    for example in examples:
        schemas = {t["function"]["name"]: t["function"]["parameters"] for t in example["tools"]}
        for name, arguments in _calls(example):
            jsonschema.validate(arguments, schemas[name])


def test_phraser_is_deterministic_for_a_seed() -> None:
    a = NaturalPhraser(random.Random(7))
    b = NaturalPhraser(random.Random(7))
    args_a = a.arguments(convert)
    args_b = b.arguments(convert)
    assert args_a == args_b
    assert a.request(convert, args_a).text == b.request(convert, args_b).text
