"""Synthesis: every tool covered, seeded, trajectories, no-tool requests, no invented nulls."""

from __future__ import annotations

import json
import types
from typing import Annotated, Any, Literal

import pydantic
import pytest

import tools
from runtime import tool
from runtime.arguments import ArgumentGate, ArgumentsAccepted
from runtime.calls import ToolCallRequest
from runtime.finetune.builtin_phrasings import builtin_phrasebook
from runtime.finetune.dataset_format import (
    DatasetFormatError,
    read_jsonl,
    validate_example,
    write_jsonl,
)
from runtime.finetune.phrasebook import Case, Phrasebook, ToolPhrases
from runtime.finetune.synth import SynthConfig, SynthesisError, Synthesizer, synthesize, tools_in
from runtime.tools import ToolRegistry


def _m(example: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation without the optional leading system prompt."""
    messages = list(example["messages"])
    return messages[1:] if messages and messages[0]["role"] == "system" else messages


def _custom_module() -> types.ModuleType:
    module = types.ModuleType("weather_tools")

    @tool
    def get_weather(city: str, unit: Literal["c", "f"] = "c") -> dict[str, object]:
        """Get the current weather for a city.

        Args:
            city: City name, e.g. "Paris".
            unit: Temperature unit.
        """
        return {"city": city, "temp": 21, "unit": unit}

    @tool
    def book_table(
        restaurant: str,
        people: Annotated[int, pydantic.Field(ge=1, le=12)],
        date: Annotated[str, pydantic.Field(json_schema_extra={"format": "date"})],
    ) -> str:
        """Reserve a restaurant table.

        Args:
            restaurant: Restaurant name.
            people: Party size.
            date: Day of the booking.
        """
        return "booked"

    module.get_weather = get_weather  # type: ignore[attr-defined]
    module.book_table = book_table  # type: ignore[attr-defined]
    return module


BUILTIN = ToolRegistry.from_module(tools)
CUSTOM = ToolRegistry.from_module(_custom_module())


def _calls(example: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (c["function"]["name"], c["function"]["arguments"])
        for m in _m(example)
        for c in m.get("tool_calls") or []
    ]


@pytest.mark.parametrize(
    ("registry", "book"), [(BUILTIN, builtin_phrasebook()), (CUSTOM, None), (BUILTIN, None)]
)
def test_every_tool_is_covered_and_every_call_validates(
    registry: ToolRegistry, book: Phrasebook | None
) -> None:
    examples = synthesize(registry, per_tool=12, seed=1, phrasebook=book)
    assert tools_in(examples) == {t.name for t in registry}
    gate = ArgumentGate(registry)
    for example in examples:
        validate_example(example)
        assert example["tools"] == registry.openai_schemas()
        for name, arguments in _calls(example):
            assert isinstance(arguments, str)
            checked = gate.check(ToolCallRequest("c", name, arguments))
            assert isinstance(checked, ArgumentsAccepted), (_m(example)[0], checked)
            # only this tool's own keys, never a null filler for another tool's keys
            parsed = json.loads(arguments)
            assert set(parsed) <= set(registry.get(name).parameters["properties"])  # type: ignore[union-attr]
            assert None not in parsed.values()


def test_same_seed_same_examples_other_seed_other_examples() -> None:
    first = synthesize(BUILTIN, per_tool=8, seed=5, phrasebook=builtin_phrasebook())
    again = synthesize(BUILTIN, per_tool=8, seed=5, phrasebook=builtin_phrasebook())
    other = synthesize(BUILTIN, per_tool=8, seed=6, phrasebook=builtin_phrasebook())
    assert json.dumps(first) == json.dumps(again)
    assert json.dumps(first) != json.dumps(other)
    assert json.dumps(synthesize(CUSTOM, per_tool=6, seed=5)) == json.dumps(
        synthesize(CUSTOM, per_tool=6, seed=5)
    )


def test_mix_has_trajectories_parallel_calls_and_no_tool_requests() -> None:
    examples = synthesize(BUILTIN, per_tool=20, seed=0, phrasebook=builtin_phrasebook())
    kinds = [e["metadata"]["kind"] for e in examples]
    assert {"single", "trajectory", "parallel", "no_tool"} == set(kinds)
    assert 0.15 < kinds.count("no_tool") / len(kinds) < 0.3
    for example in examples:
        roles = [m["role"] for m in _m(example)]
        if example["metadata"]["kind"] == "trajectory":
            # request -> call -> tool result -> final text answer (no echo, no second call)
            assert roles == ["user", "assistant", "tool", "assistant"]
            call_id = _m(example)[1]["tool_calls"][0]["id"]
            assert _m(example)[2]["tool_call_id"] == call_id
            final = _m(example)[3]
            assert (
                final["content"]
                and "tool_calls" not in final
                and "<tool_response>" not in final["content"]
            )
        elif example["metadata"]["kind"] == "no_tool":
            assert roles == ["user", "assistant"] and "tool_calls" not in _m(example)[1]
            assert _m(example)[1]["content"]
        elif example["metadata"]["kind"] == "parallel":
            assert len(_m(example)[1]["tool_calls"]) == 2
    haiku = [e for e in examples if "haiku" in _m(e)[0]["content"].lower()]
    assert all(e["metadata"]["kind"] == "no_tool" for e in haiku)


def test_trajectory_results_are_the_real_tool_results() -> None:
    examples = synthesize(BUILTIN, per_tool=20, seed=0, phrasebook=builtin_phrasebook())
    for example in examples:
        if example["metadata"]["kind"] != "trajectory":
            continue
        name, arguments = _calls(example)[0]
        if name == "calculate":
            expected = tools.calculate.invoke_sync(json.loads(arguments))
            assert json.loads(_m(example)[2]["content"]) == pytest.approx(expected, rel=1e-6)


def test_generic_requests_write_every_argument_value_and_no_parameter_name() -> None:
    from runtime.finetune.teacher import values_kept

    examples = synthesize(CUSTOM, per_tool=10, seed=4)
    for example in examples:
        request = _m(example)[0]["content"]
        calls = [json.loads(arguments) for _, arguments in _calls(example)]
        assert "restaurant restaurant" not in request
        for arguments in calls:
            for value in arguments.values():
                if isinstance(value, str) and not _is_date(value):
                    assert value.casefold() in request.casefold(), (value, request)
        assert values_kept(request, request, calls)


def _is_date(value: str) -> bool:
    import re

    return re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) is not None


def test_phrasebook_sampler_must_provide_required_arguments() -> None:
    bad = Phrasebook(
        tools={
            "convert_units": ToolPhrases(
                ["Convert {value}"], lambda rng: Case({"value": 1}, {"value": "1"})
            )
        }
    )
    with pytest.raises(SynthesisError, match="leaves out"):
        Synthesizer(BUILTIN, bad, SynthConfig(per_tool=1))


def test_jsonl_round_trip_and_validation(tmp_path: Any) -> None:
    examples = synthesize(CUSTOM, per_tool=3, seed=0)
    path = tmp_path / "data.jsonl"
    assert write_jsonl(path, examples) == len(examples)
    assert read_jsonl(path) == examples
    write_jsonl(tmp_path / "plain.jsonl", examples, metadata=False)
    assert "metadata" not in read_jsonl(tmp_path / "plain.jsonl")[0]
    broken = json.loads(json.dumps(examples[0]))
    for message in broken["messages"]:
        for call in message.get("tool_calls") or []:
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    if any(m.get("tool_calls") for m in broken["messages"]):
        with pytest.raises(DatasetFormatError, match="JSON string"):
            validate_example(broken)


def test_token_only_rows_avoid_the_from_list_null_merge() -> None:
    """`datasets.Dataset.from_list` on raw calls invents nulls; our rows are token ids only."""
    datasets = pytest.importorskip("datasets")
    rows = [
        {"call": {"name": "get_weather", "arguments": {"city": "Paris"}}},
        {"call": {"name": "book_table", "arguments": {"people": 2}}},
    ]
    merged = datasets.Dataset.from_list(rows)
    assert merged[0]["call"]["arguments"] == {"city": "Paris", "people": None}  # the pitfall
    safe = datasets.Dataset.from_list(
        [
            {"input_ids": [1, 2], "assistant_masks": [0, 1]},
            {"input_ids": [3], "assistant_masks": [1]},
        ]
    )
    assert safe[1]["input_ids"] == [3]


def test_json_phrasebook_drives_wording_values_and_answers(tmp_path: Any) -> None:
    from runtime.finetune.phrasebook import load_phrasebook

    path = tmp_path / "phrases.json"
    path.write_text(
        json.dumps(
            {
                "tools": {
                    "get_weather": {
                        "requests": ["Is it warm in {city} today?", "Weather for {city}, please."],
                        "values": {"city": ["Lisbon", "Quito"]},
                        "answers": ["It is {result[temp]} degrees in {city}."],
                        "results": [{"temp": 19}],
                    }
                },
                "no_tool": [["Write a haiku about fog", "Grey fog on the bay..."]],
            }
        )
    )
    book = load_phrasebook(path)
    examples = Synthesizer(CUSTOM, book, SynthConfig(per_tool=6, seed=1)).generate()
    weather = [
        e
        for e in examples
        if _calls(e) and _calls(e)[0][0] == "get_weather" and len(_calls(e)) == 1
    ]
    assert weather
    for example in weather:
        request = _m(example)[0]["content"]
        city = json.loads(_calls(example)[0][1])["city"]
        assert city in ("Lisbon", "Quito") and city in request
        if example["metadata"]["kind"] == "trajectory":
            assert _m(example)[2]["content"] == '{"temp": 19}'
            assert _m(example)[3]["content"] == f"It is 19 degrees in {city}."
    no_tool = [e for e in examples if e["metadata"].get("why") == "chat"]
    assert no_tool and all(_m(e)[0]["content"] == "Write a haiku about fog" for e in no_tool)


def _optional_arguments_stated(examples: list[dict[str, Any]]) -> tuple[int, int]:
    """(optional arguments in the calls, calls) over `examples`."""
    stated = calls = 0
    for example in examples:
        required = {
            t["function"]["name"]: set(t["function"]["parameters"].get("required", []))
            for t in example["tools"]
        }
        for message in example["messages"]:
            for call in message.get("tool_calls") or []:
                arguments = json.loads(call["function"]["arguments"])
                stated += len(set(arguments) - required[call["function"]["name"]])
                calls += 1
    return stated, calls


def test_the_optional_rate_sets_how_often_requests_state_optional_arguments() -> None:
    from runtime.finetune.general import general_dataset

    never, calls = _optional_arguments_stated(general_dataset(6, seed=1, optional_rate=0.0))
    assert never == 0 and calls > 50
    usual, _ = _optional_arguments_stated(general_dataset(6, seed=1, optional_rate=0.3))
    often, _ = _optional_arguments_stated(general_dataset(6, seed=1, optional_rate=0.6))
    assert 0 < usual < often
    registry = ToolRegistry.from_module(tools)
    quiet = Synthesizer(registry, None, SynthConfig(per_tool=20, optional_rate=0.0)).generate()
    assert _optional_arguments_stated(quiet)[0] == 0
