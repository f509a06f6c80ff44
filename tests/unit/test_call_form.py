"""The `every-key` call form (runtime/model/call_form.py): training renders it,
the embedded server and the client turn it back into ordinary calls."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runtime.finetune.chat_template import assistant_body
from runtime.model.call_form import (
    drop_unstated,
    drop_unstated_in_text,
    every_key_schema,
    spell_out,
    spell_out_example,
)
from runtime.model.llama_server_main import with_call_form

LIGHTS = {
    "type": "object",
    "properties": {
        "room": {"type": "string"},
        "on": {"type": "boolean", "default": True},
        "brightness": {"type": "integer", "minimum": 0, "maximum": 100},
        "color": {"type": ["string", "null"], "default": None},
    },
    "required": ["room"],
}
TOOLS = [{"type": "function", "function": {"name": "set_lights", "parameters": LIGHTS}}]


def test_every_parameter_is_written_in_the_schemas_order_unstated_optional_ones_null() -> None:
    spelled = spell_out({"on": False, "room": "kitchen"}, LIGHTS)
    assert list(spelled.items()) == [
        ("room", "kitchen"),
        ("on", False),
        ("brightness", None),
        ("color", None),
    ]


def test_a_missing_required_argument_stays_missing_and_unknown_ones_stay() -> None:
    # The form never invents a required value, and keeps what the schema does not
    # name (so the gate still rejects it): the model learns nothing from the form
    # that the call did not say.
    spelled = spell_out({"colour": "red"}, LIGHTS)
    assert "room" not in spelled
    assert spelled["colour"] == "red"
    assert list(spelled)[-1] == "colour"


@pytest.mark.parametrize(
    "arguments",
    [{"room": "hall"}, {"room": "hall", "on": False}, {"room": "hall", "brightness": 0}],
)
def test_dropping_the_unstated_gives_back_the_call(arguments: dict[str, Any]) -> None:
    assert drop_unstated(spell_out(arguments, LIGHTS), LIGHTS) == arguments


def test_only_optional_nulls_are_dropped() -> None:
    # A null where a value is required is the model's mistake: the gate must see it.
    assert drop_unstated({"room": None, "on": None, "extra": None}, LIGHTS) == {
        "room": None,
        "extra": None,
    }


def test_a_schema_without_properties_is_left_alone() -> None:
    assert spell_out({"a": 1}, {"type": "object"}) == {"a": 1}
    assert drop_unstated({"a": None}, None) == {"a": None}
    assert every_key_schema({"type": "object"}) == {"type": "object"}


def test_the_grammar_schema_requires_every_key_and_lets_optional_ones_be_null() -> None:
    schema = every_key_schema(LIGHTS)
    assert schema["required"] == ["room", "on", "brightness", "color"]
    assert schema["properties"]["room"] == {"type": "string"}
    assert schema["properties"]["on"] == {
        "anyOf": [{"type": "boolean", "default": True}, {"type": "null"}]
    }
    assert LIGHTS["required"] == ["room"]  # not changed in place


def _call(arguments: Any) -> dict[str, Any]:
    return {
        "id": "c1",
        "type": "function",
        "function": {"name": "set_lights", "arguments": arguments},
    }


def test_a_training_example_is_rendered_in_the_every_key_form() -> None:
    example = {
        "messages": [
            {"role": "user", "content": "kitchen lights off"},
            {"role": "assistant", "content": "", "tool_calls": [_call('{"room": "kitchen"}')]},
            {"role": "tool", "tool_call_id": "c1", "content": "{}"},
            {"role": "assistant", "content": "Done."},
        ],
        "tools": TOOLS,
    }
    spelled = spell_out_example(example)
    body = assistant_body(spelled["messages"][1])
    assert body == (
        '<tool_call>\n{"name": "set_lights", "arguments": {"room": "kitchen", "on": null, '
        '"brightness": null, "color": null}}\n</tool_call>'
    )
    # arguments stay a JSON string (no columnar loader can merge keys across tools)
    assert isinstance(spelled["messages"][1]["tool_calls"][0]["function"]["arguments"], str)
    assert spelled["messages"][3] == example["messages"][3]
    assert example["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"room": "kitchen"}'


def test_calls_to_unknown_tools_and_malformed_arguments_are_left_as_written() -> None:
    broken = _call('{"room": ')
    other = {"id": "c2", "type": "function", "function": {"name": "nope", "arguments": "{}"}}
    example = {
        "messages": [{"role": "assistant", "content": "", "tool_calls": [broken, other]}],
        "tools": TOOLS,
    }
    assert spell_out_example(example)["messages"][0]["tool_calls"] == [broken, other]


REPLY = (
    '<tool_call>\n{"name": "set_lights", "arguments": {"room": "kitchen", "on": false, '
    '"brightness": null, "color": null}}\n</tool_call>'
)
PLAIN = '<tool_call>\n{"name": "set_lights", "arguments": {"room": "kitchen", "on": false}}\n</tool_call>'


def test_a_replys_calls_are_written_back_without_the_unstated() -> None:
    assert drop_unstated_in_text(REPLY, TOOLS) == PLAIN
    two = drop_unstated_in_text(REPLY + "\n" + REPLY, TOOLS)
    assert two == PLAIN + "\n" + PLAIN
    assert drop_unstated_in_text("Lights are a tool.", TOOLS) == "Lights are a tool."
    junk = '<tool_call>\n{"name": "set_lights", "arguments": {"room": nul\n</tool_call>'
    assert drop_unstated_in_text(junk, TOOLS) == junk


class _Handler:
    """Stands in for llama-cpp-python's chat handler: records what it was given."""

    def __init__(self, content: str, *, stream: bool) -> None:
        self.content, self.stream = content, stream
        self.seen: Any = None

    def __call__(self, **kwargs: Any) -> Any:
        self.seen = kwargs
        if not self.stream:
            return {"choices": [{"message": {"role": "assistant", "content": self.content}}]}
        pieces = [self.content[i : i + 7] for i in range(0, len(self.content), 7)]
        chunks = [{"choices": [{"delta": {"role": "assistant"}, "finish_reason": None}]}]
        chunks += [{"choices": [{"delta": {"content": p}, "finish_reason": None}]} for p in pieces]
        chunks.append({"choices": [{"delta": {}, "finish_reason": "stop"}]})
        return iter(chunks)


def _history() -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "kitchen lights off"},
        {"role": "assistant", "content": "", "tool_calls": [_call('{"room": "kitchen"}')]},
        {"role": "tool", "tool_call_id": "c1", "content": "{}"},
        {"role": "user", "content": "and the hall"},
    ]


def test_the_server_shows_history_in_the_form_and_answers_plain_calls() -> None:
    handler = _Handler(REPLY, stream=False)
    result = with_call_form(handler)(messages=_history(), tools=TOOLS)
    assert result["choices"][0]["message"]["content"] == PLAIN
    sent = handler.seen["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(sent) == {"room": "kitchen", "on": None, "brightness": None, "color": None}


def test_a_streamed_call_arrives_whole_and_without_the_unstated() -> None:
    chunks = list(with_call_form(_Handler(REPLY, stream=True))(messages=_history(), tools=TOOLS))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == PLAIN
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert sum(1 for c in chunks if c["choices"][0]["delta"].get("content")) == 1


def test_a_streamed_plain_answer_streams_as_it_comes() -> None:
    answer = "The kitchen lights are off now; anything else?"
    chunks = list(with_call_form(_Handler(answer, stream=True))(messages=_history(), tools=TOOLS))
    contents = [c["choices"][0]["delta"].get("content") for c in chunks]
    assert "".join(c or "" for c in contents) == answer
    assert sum(1 for c in contents if c) > 1


def test_requests_without_tools_pass_through() -> None:
    handler = _Handler("hello", stream=False)
    messages = _history()
    with_call_form(handler)(messages=messages)
    assert handler.seen["messages"] is messages


def test_a_finetune_run_keeps_the_form_of_the_adapter_it_continues(tmp_path: Any) -> None:
    from runtime.cli.finetune_cmd import training_call_form

    assert training_call_form(None, None) == "plain"
    assert training_call_form("every-key", None) == "every-key"
    assert training_call_form(None, tmp_path) == "plain"  # no manifest: an older adapter
    (tmp_path / "agentrt_adapter.json").write_text(json.dumps({"call_form": "every-key"}))
    assert training_call_form(None, tmp_path) == "every-key"
    assert training_call_form("plain", tmp_path) == "plain"
    with pytest.raises(ValueError, match="call-form"):
        training_call_form("all", None)
