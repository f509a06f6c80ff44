"""An `every-key` adapter behind a vLLM-like server (the scripted one): the
client sends earlier calls in that form and hands the runtime ordinary calls."""

from __future__ import annotations

import json

import pytest

from runtime.model import OpenAICompatibleClient, SamplingSettings
from runtime.testing import ScriptedReply, ScriptedServer

LIGHTS = {
    "type": "object",
    "properties": {
        "room": {"type": "string"},
        "on": {"type": "boolean"},
        "brightness": {"type": "integer"},
    },
    "required": ["room"],
}
TOOLS = [{"type": "function", "function": {"name": "set_lights", "parameters": LIGHTS}}]
HISTORY = [
    {"role": "user", "content": "kitchen lights off"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "set_lights", "arguments": '{"room": "kitchen", "on": false}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    {"role": "user", "content": "and the hall at 40"},
]


@pytest.mark.parametrize("stream", [False, True])
async def test_unstated_arguments_are_dropped_and_history_is_spelled_out(stream: bool) -> None:
    reply = ScriptedReply.calls(
        ("set_lights", {"room": "hall", "on": None, "brightness": 40}),
        ("set_lights", {"room": None, "on": None, "brightness": None}),
    )
    async with ScriptedServer([reply]) as server:
        client = OpenAICompatibleClient(
            server.base_url, server.model, stream=stream, call_form="every-key"
        )
        try:
            turn = await client.complete(HISTORY, TOOLS, SamplingSettings())
        finally:
            await client.aclose()
        sent = server.requests[0]["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(sent) == {"room": "kitchen", "on": False, "brightness": None}
    first, second = (json.loads(call.arguments) for call in turn.tool_calls)
    assert first == {"room": "hall", "brightness": 40}
    # a null where a value is required stays, for the gate to reject
    assert second == {"room": None}


async def test_the_plain_form_leaves_calls_as_the_server_sent_them() -> None:
    reply = ScriptedReply.call("set_lights", {"room": "hall", "on": None})
    async with ScriptedServer([reply]) as server:
        client = OpenAICompatibleClient(server.base_url, server.model)
        try:
            turn = await client.complete(HISTORY, TOOLS, SamplingSettings())
        finally:
            await client.aclose()
        sent = server.requests[0]["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(sent) == {"room": "kitchen", "on": False}
    assert json.loads(turn.tool_calls[0].arguments) == {"room": "hall", "on": None}


def test_an_unknown_form_is_refused() -> None:
    with pytest.raises(ValueError, match="call_form"):
        OpenAICompatibleClient("http://127.0.0.1:9/v1", "m", call_form="all-keys")  # type: ignore[arg-type]
