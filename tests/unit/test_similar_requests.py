"""Similar worked requests: retrieval, rendering, the training transform and serving defaults."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from runtime.cli.gate_options import UsageError
from runtime.cli.prompt_options import add_prompt_options, prompt_from_args
from runtime.finetune.eval_variants import parse_variant
from runtime.finetune.similar import bank_for_tools, with_similar_requests
from runtime.model.adapters import MANIFEST_FILE, similar_requests_of
from runtime.prompting.similar_requests import HEADER, Shown, SimilarRequests, shown_from_example

LIGHTS = {
    "type": "function",
    "function": {
        "name": "set_lights",
        "description": "Switch the lights in a room on or off.",
        "parameters": {
            "type": "object",
            "properties": {
                "room": {"type": "string", "enum": ["kitchen", "office", "bedroom"]},
                "on": {"type": "boolean", "description": "True to switch on, False to switch off."},
            },
            "required": ["room"],
            "additionalProperties": False,
        },
    },
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather forecast for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name, e.g. Paris."}},
            "required": ["city"],
        },
    },
}


def _example(
    text: str, calls: list[tuple[str, dict[str, Any]]], tools: list[Any]
) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": text}]
    if calls:
        messages.append(
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": f"call_{i}",
                        "type": "function",
                        "function": {"name": name, "arguments": json.dumps(args)},
                    }
                    for i, (name, args) in enumerate(calls)
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": "call_0", "content": "{}"})
        messages.append({"role": "assistant", "content": "Done."})
    else:
        messages.append({"role": "assistant", "content": "Hello!"})
    return {"messages": messages, "tools": tools}


BANK = [
    Shown("switch off the kitchen lights", (("set_lights", '{"room": "kitchen", "on": false}'),)),
    Shown("what's the weather like in Paris tomorrow", (("get_weather", '{"city": "Paris"}'),)),
    Shown("hello, how are you?", ()),
    Shown("turn the office lights on", (("set_lights", '{"room": "office", "on": true}'),)),
]


def test_nearest_ranks_by_shared_words_and_skips_only_the_excluded_text() -> None:
    bank = SimilarRequests(BANK, k=2)
    first, second = bank.nearest("kitchen lights off please")
    assert first.text == "switch off the kitchen lights"
    assert second.calls[0][0] == "set_lights"
    assert bank.nearest("Weather in Paris?", 1)[0].calls == (("get_weather", '{"city": "Paris"}'),)
    # the same text is shown at serving time, skipped only when excluded (training)
    assert bank.nearest("hello, how are you?", 1)[0].text == "hello, how are you?"
    assert bank.nearest("Hello, how are you?", 1, exclude="hello, how are you?")[0].text != (
        "hello, how are you?"
    )


def test_message_is_a_user_turn_listing_calls_and_no_tool_answers() -> None:
    bank = SimilarRequests(BANK, k=2)
    message = bank.message_for("hi, how are you doing")
    assert message is not None and message["role"] == "user"
    lines = message["content"].splitlines()
    assert lines[0] == HEADER
    assert '"hello, how are you?" -> no tool: answer directly' in lines
    message = bank.message_for("switch the office lights off")
    assert message is not None
    assert '-> set_lights {"room": "office", "on": true}' in message["content"]
    assert asyncio.run(bank.amessages_for("office lights")) == [bank.message_for("office lights")]


def test_an_empty_bank_or_request_adds_nothing() -> None:
    assert SimilarRequests([], k=2).messages_for("anything") == []
    assert SimilarRequests(BANK, k=2).messages_for("   ") == []
    with pytest.raises(ValueError):
        SimilarRequests(BANK, k=0)


def test_shown_from_example_takes_the_first_turns_calls_only() -> None:
    example = _example("lights off in the kitchen", [("set_lights", {"room": "kitchen"})], [LIGHTS])
    example["messages"] += [
        {"role": "user", "content": "and the weather?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "x",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
    ]
    shown = shown_from_example(example)
    assert shown == Shown("lights off in the kitchen", (("set_lights", '{"room": "kitchen"}'),))
    assert shown_from_example({"messages": [{"role": "assistant", "content": "hi"}]}) is None


def test_training_transform_never_shows_an_example_itself_or_another_tool_sets() -> None:
    lights = [
        _example(
            "switch off the kitchen lights",
            [("set_lights", {"room": "kitchen", "on": False})],
            [LIGHTS],
        ),
        _example(
            "office lights on please", [("set_lights", {"room": "office", "on": True})], [LIGHTS]
        ),
        _example(
            "bedroom lights off", [("set_lights", {"room": "bedroom", "on": False})], [LIGHTS]
        ),
    ]
    weather = [
        _example("weather in Oslo", [("get_weather", {"city": "Oslo"})], [WEATHER]),
        _example("is it raining in Lima", [("get_weather", {"city": "Lima"})], [WEATHER]),
    ]
    bare = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}]
    }
    out = with_similar_requests([*lights, *weather, bare], 2)
    assert out[-1] == bare
    for before, after in zip([*lights, *weather], out, strict=False):
        request = before["messages"][0]["content"]
        shown = after["messages"][0]
        assert shown["role"] == "user" and shown["content"].startswith(HEADER)
        assert after["messages"][1:] == before["messages"]
        assert json.dumps(request) not in shown["content"]
        wrong = "get_weather" if before["tools"] == [LIGHTS] else "set_lights"
        assert wrong not in shown["content"]


def test_training_transform_keeps_a_system_prompt_first() -> None:
    example = _example("kitchen lights off", [("set_lights", {"room": "kitchen"})], [LIGHTS])
    example["messages"].insert(0, {"role": "system", "content": "Be brief."})
    other = _example("office lights on", [("set_lights", {"room": "office"})], [LIGHTS])
    out = with_similar_requests([example, other], 1)
    roles = [m["role"] for m in out[0]["messages"][:3]]
    assert roles == ["system", "user", "user"]
    assert out[0]["messages"][2]["content"] == "kitchen lights off"


def test_bank_for_tools_synthesises_from_schemas_and_survives_a_bad_one() -> None:
    bank = bank_for_tools([LIGHTS, WEATHER], k=2)
    names = {name for shown in bank.bank for name, _ in shown.calls}
    assert names == {"set_lights", "get_weather"}
    assert any(not shown.calls for shown in bank.bank)  # no-tool requests are in the bank too
    impossible = {
        "type": "function",
        "function": {
            "name": "never",
            "description": "Cannot be called.",
            "parameters": {
                "type": "object",
                "properties": {"n": {"type": "integer", "minimum": 5, "maximum": 1}},
                "required": ["n"],
            },
        },
    }
    survived = bank_for_tools([LIGHTS, impossible], k=2)
    assert {name for shown in survived.bank for name, _ in shown.calls} == {"set_lights"}


def test_adapter_manifest_sets_the_serving_default(tmp_path: Path) -> None:
    assert similar_requests_of(None) == 0
    assert similar_requests_of(tmp_path / "adapter.gguf") == 0
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({"similar_requests": 2}))
    assert similar_requests_of(tmp_path / "adapter.gguf") == 2
    assert similar_requests_of(tmp_path) == 2
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({"similar_requests": "2"}))
    assert similar_requests_of(tmp_path) == 0


class _Registry:
    def openai_schemas(self) -> list[dict[str, Any]]:
        return [LIGHTS]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_prompt_options(parser)
    return parser.parse_args(list(argv))


def test_run_flags_follow_the_adapter_unless_told(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({"similar_requests": 3}))
    adapter = tmp_path / "adapter.gguf"
    choice = prompt_from_args(_args(), _Registry(), adapter=adapter)
    assert isinstance(choice.retrieval, SimilarRequests) and choice.retrieval.k == 3
    assert (
        prompt_from_args(_args("--similar-requests", "0"), _Registry(), adapter=adapter).retrieval
        is None
    )
    assert prompt_from_args(_args(), _Registry(), adapter=None).retrieval is None
    explicit = prompt_from_args(_args("--similar-requests", "1"), _Registry()).retrieval
    assert isinstance(explicit, SimilarRequests) and explicit.k == 1
    with pytest.raises(UsageError, match="0 or more"):
        prompt_from_args(_args("--similar-requests", "-1"), _Registry())


def test_eval_variant_lever() -> None:
    assert parse_variant("sim:similar=2").similar == 2
    assert parse_variant("plain").similar == 0
    assert parse_variant("sim:similar=2").describe()["similar"] == 2


def _tool(name: str, parameters: Any, description: str = "Do a thing.") -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def test_bank_for_tools_never_fails_a_run_on_odd_schemas(caplog: pytest.LogCaptureFixture) -> None:
    nested_model = _tool(
        "file_claim",
        {
            "type": "object",
            "$defs": {
                "Party": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}},
                    "required": ["name"],
                }
            },
            "properties": {"party": {"$ref": "#/$defs/Party"}},
            "required": ["party"],
        },
    )
    odd = [
        _tool("ping", {"type": "object", "properties": {}}, description=""),
        {"type": "function", "function": {"name": "no_schema"}},
        _tool(
            "pick",
            {
                "type": "object",
                "properties": {"c": {"type": "string", "enum": [f"v{i}" for i in range(500)]}},
                "required": ["c"],
            },
        ),
        _tool(
            "either",
            {
                "type": "object",
                "properties": {"v": {"oneOf": [{"type": "string"}, {"type": "integer"}]}},
                "required": ["v"],
            },
        ),
        _tool("broken", "not a schema"),
        _tool("dangling", {"type": "object", "properties": {"p": {"$ref": "#/$defs/Gone"}}}),
    ]
    bank = bank_for_tools([nested_model, *odd], k=2)
    called = {name for shown in bank.bank for name, _ in shown.calls}
    assert "file_claim" in called  # local $refs are inlined before synthesis
    assert {"pick", "either"} <= called
    assert "broken" not in called
    assert "tool broken" in caplog.text
    assert bank.messages_for("file a claim for Dana") != []
