"""Server quirks: text-embedded calls, history repair, finish reasons, error bodies."""

from __future__ import annotations

import json

from runtime.calls import ToolCallRequest
from runtime.model import compat
from runtime.model.client import ModelTurn, Usage
from runtime.model.settings import SamplingSettings


def test_extracts_hermes_blocks_and_keeps_surrounding_text() -> None:
    text = (
        "Let me check.\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Madrid"}}\n</tool_call>\n'
        '<tool_call>{"name": "add", "arguments": "{\\"a\\": 1}"}</tool_call>'
    )
    remaining, calls = compat.extract_text_tool_calls(text)
    assert remaining == "Let me check."
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Madrid"}),
        ("add", {"a": 1}),
    ]
    assert all(c.id.startswith("chatcmpl-tool-") and len(c.id) == 30 for c in calls)
    assert calls[0].raw is not None and "get_weather" in calls[0].raw


def test_malformed_block_still_becomes_a_call_for_the_gate_to_reject() -> None:
    remaining, calls = compat.extract_text_tool_calls(
        '<tool_call>{"name": "add", "arguments": {"a": 1,}}</tool_call>'
    )
    assert remaining == ""
    assert len(calls) == 1
    assert calls[0].name == "add"
    assert calls[0].arguments == '{"a": 1,}'


def test_unterminated_block_from_max_tokens_counts() -> None:
    _, calls = compat.extract_text_tool_calls('<tool_call>{"name": "add", "arguments": {"a": 1')
    assert len(calls) == 1 and calls[0].name == "add"


def test_block_without_a_name_is_a_nameless_call() -> None:
    _, calls = compat.extract_text_tool_calls("<tool_call>garbage</tool_call>")
    assert calls[0].name == "" and calls[0].arguments == "garbage"


def test_text_without_blocks_is_untouched() -> None:
    assert compat.extract_text_tool_calls("plain answer") == ("plain answer", [])
    assert compat.extract_text_tool_calls(None) == ("", [])


def test_a_stray_closing_tag_is_not_part_of_the_answer() -> None:
    # what the 135M model wrote in the demo: an answer, then the template's closing tag
    assert compat.extract_text_tool_calls("1.0 miles\n</tool_call>") == ("1.0 miles", [])
    text, calls = compat.extract_text_tool_calls(
        'Sure.\n<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n</tool_call>\n</tool_call>'
    )
    assert text == "Sure." and [c.name for c in calls] == ["add"]


def test_repair_history_fixes_null_content_and_unparseable_arguments() -> None:
    history = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "a", "arguments": '{"x": 1'}},
                {"id": "2", "type": "function", "function": {"name": "b", "arguments": "[1]"}},
                {"id": "3", "type": "function", "function": {"name": "c", "arguments": '{"y": 2}'}},
            ],
        },
        {"role": "assistant", "content": None, "tool_calls": []},
    ]
    repaired = compat.repair_history(history)
    assert repaired[1]["content"] == ""
    args = [call["function"]["arguments"] for call in repaired[1]["tool_calls"]]
    assert args == ["{}", "{}", '{"y": 2}']
    assert "tool_calls" not in repaired[2]
    # the caller's history is not modified
    assert history[1]["content"] is None
    assert history[1]["tool_calls"][0]["function"]["arguments"] == '{"x": 1'


def test_finish_reason_normalisation() -> None:
    assert (
        compat.normalise_finish_reason("stop", has_calls=True) == "tool_calls"
    )  # vLLM named choice
    assert compat.normalise_finish_reason("tool_calls", has_calls=False) == "stop"
    assert compat.normalise_finish_reason("length", has_calls=False) == "length"
    assert compat.normalise_finish_reason(None, has_calls=False) == "stop"
    assert compat.normalise_finish_reason("weird", has_calls=False) == "stop"


def test_error_message_shapes() -> None:
    vllm = {"error": {"message": "The model `nope` does not exist.", "type": "NotFoundError"}}
    assert compat.error_message(vllm, "x") == "The model `nope` does not exist."
    assert compat.error_message({"error": "bad"}, "x") == "bad"
    assert compat.error_message({"detail": "nope"}, "x") == "nope"
    assert compat.error_message(None, "fallback") == "fallback"


def test_sampling_fields_split_into_openai_and_extra_body() -> None:
    settings = SamplingSettings(
        temperature=0.2, top_k=20, min_p=0.05, repetition_penalty=1.1, seed=7, stop=("END",)
    )
    fields, extra = settings.request_fields(has_tools=True)
    assert fields == {
        "max_tokens": 512,
        "temperature": 0.2,
        "seed": 7,
        "stop": ["END"],
        "tool_choice": "auto",
    }
    assert extra == {"top_k": 20, "min_p": 0.05, "repetition_penalty": 1.1}
    named, _ = SamplingSettings(tool_choice="add").request_fields(has_tools=True)
    assert named["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    no_tools, _ = SamplingSettings(tool_choice="required").request_fields(has_tools=False)
    assert "tool_choice" not in no_tools  # vLLM answers 400 for tool_choice without tools


def test_impossible_sampling_values_are_rejected() -> None:
    import pydantic
    import pytest

    for bad in (
        {"temperature": -1},
        {"temperature": float("nan")},
        {"top_p": 0},
        {"max_tokens": 0},
        {"min_p": 2},
        {"unknown": 1},
    ):
        with pytest.raises(pydantic.ValidationError):
            SamplingSettings(**bad)


def test_model_facing_tools_drop_grammar_hostile_bounds_only() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "maxLength": 4096, "minLength": 1},
                        "tags": {"type": "array", "maxItems": 8},
                    },
                },
            },
        }
    ]
    relaxed = compat.model_facing_tools(tools)
    props = relaxed[0]["function"]["parameters"]["properties"]
    assert props["path"] == {"type": "string", "minLength": 1}
    assert props["tags"] == {"type": "array", "maxItems": 8}
    assert tools[0]["function"]["parameters"]["properties"]["path"]["maxLength"] == 4096


def test_a_reply_becomes_a_turn_in_one_place() -> None:
    block = '<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>'
    recovered = ModelTurn.from_reply(f"Sure. {block}", (), "stop", usage=Usage(), model="m")
    assert recovered.text == "Sure." and recovered.content == f"Sure. {block}"
    assert [c.name for c in recovered.tool_calls] == ["add"] and recovered.calls_from_text
    assert recovered.finish_reason == "tool_calls"
    native = ToolCallRequest(id="call_1", name="sub", arguments="{}")
    served = ModelTurn.from_reply(block, (native,), "stop", usage=Usage(), model="m")
    # The server's own calls win; the text is left as sent.
    assert served.tool_calls == (native,) and not served.calls_from_text
    assert served.text == block and served.finish_reason == "tool_calls"
    # `read`: only part of the content counts (think-first drops its reasoning).
    part = ModelTurn.from_reply(
        f"<think>{block}</think>4", (), "stop", usage=Usage(), model="m", read="4"
    )
    assert part.tool_calls == () and part.text == "4" and part.finish_reason == "stop"


def test_repair_history_passes_sound_messages_through_uncopied() -> None:
    sound = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "a", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "1", "content": "ok"},
    ]
    repaired = compat.repair_history(sound)
    assert repaired == sound
    assert all(out is given for out, given in zip(repaired, sound, strict=True))
