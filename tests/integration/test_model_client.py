"""The OpenAI-compatible client over real HTTP: scripted replies and verbatim vLLM captures."""

from __future__ import annotations

import json

import pytest

from runtime.model import ModelError, OpenAICompatibleClient, RetryPolicy, SamplingSettings
from runtime.testing import ScriptedReply, ScriptedServer
from tests.conftest import load_captures

FAST_RETRY = RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.01)
USER = [{"role": "user", "content": "hi"}]


def client_for(server: ScriptedServer, *, stream: bool = False) -> OpenAICompatibleClient:
    return OpenAICompatibleClient(server.base_url, server.model, stream=stream, retry=FAST_RETRY)


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_calls_and_text_round_trip(stream: bool) -> None:
    replies = [
        ScriptedReply.calls(("add", {"a": 1, "b": 2}), ("mul", '{"a": 3,')),
        ScriptedReply.message("the answer is 3"),
    ]
    with ScriptedServer(replies) as server:
        client = client_for(server, stream=stream)
        first = await client.complete(USER, [], SamplingSettings())
        second = await client.complete(USER, [], SamplingSettings())
        await client.aclose()
    assert [(c.name, c.arguments) for c in first.tool_calls] == [
        ("add", '{"a": 1, "b": 2}'),
        ("mul", '{"a": 3,'),
    ]
    assert all(c.id.startswith("chatcmpl-tool-") for c in first.tool_calls)
    assert first.finish_reason == "tool_calls"
    assert (second.text, second.tool_calls, second.finish_reason) == ("the answer is 3", (), "stop")
    assert second.usage.completion_tokens > 0


@pytest.mark.parametrize("stream", [False, True])
async def test_calls_in_text_are_recovered(stream: bool) -> None:
    text = 'Sure.<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>'
    with ScriptedServer([ScriptedReply.message(text)]) as server:
        client = client_for(server, stream=stream)
        turn = await client.complete(USER, [], SamplingSettings())
        await client.aclose()
    assert turn.calls_from_text
    assert [(c.name, json.loads(c.arguments)) for c in turn.tool_calls] == [
        ("add", {"a": 1, "b": 2})
    ]
    assert turn.text == "Sure."


async def test_request_carries_sampling_tools_and_repaired_history() -> None:
    history = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "x", "type": "function", "function": {"name": "f", "arguments": "{bad"}}
            ],
        },
        {"role": "tool", "tool_call_id": "x", "content": "error"},
    ]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    settings = SamplingSettings(temperature=0.1, max_tokens=64, top_k=5, seed=3, tool_choice="f")
    with ScriptedServer([ScriptedReply.message("ok")]) as server:
        client = client_for(server)
        await client.complete(history, tools, settings)
        await client.aclose()
    sent = server.requests[0]
    assert sent["max_tokens"] == 64 and sent["temperature"] == 0.1 and sent["seed"] == 3
    assert sent["top_k"] == 5  # extra_body fields land at the top level, as vLLM reads them
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert sent["tools"] == tools
    assert sent["messages"][1]["content"] == ""
    assert sent["messages"][1]["tool_calls"][0]["function"]["arguments"] == "{}"


@pytest.mark.parametrize(
    "failure",
    [
        ScriptedReply.failure(429, "slow down", retry_after=0),
        ScriptedReply.failure(500, "boom"),
        ScriptedReply.failure(503, "loading"),
        ScriptedReply.drop_connection(),
    ],
)
async def test_transient_failures_are_retried(failure: ScriptedReply) -> None:
    with ScriptedServer([failure, failure, ScriptedReply.message("ok")]) as server:
        client = client_for(server)
        turn = await client.complete(USER, [], SamplingSettings())
        await client.aclose()
    assert turn.text == "ok"
    assert len(server.requests) == 3 or failure.disconnect


async def test_retries_end_in_a_clear_error() -> None:
    with ScriptedServer([ScriptedReply.failure(500, "boom")] * 3) as server:
        client = client_for(server)
        with pytest.raises(ModelError) as caught:
            await client.complete(USER, [], SamplingSettings())
        await client.aclose()
    assert caught.value.kind == "server_error"
    assert caught.value.attempts == 3
    assert "answered 500: boom" in str(caught.value)
    assert len(server.requests) == 3


async def test_client_errors_are_not_retried() -> None:
    capture = load_captures("unknown-model")[0]
    with ScriptedServer([ScriptedReply.captured(status=404, body=capture["response"])]) as server:
        client = client_for(server)
        with pytest.raises(ModelError) as caught:
            await client.complete(USER, [], SamplingSettings())
        await client.aclose()
    assert caught.value.kind == "not_found"
    assert "The model `nope` does not exist." in str(caught.value)
    assert len(server.requests) == 1


async def test_server_down_is_a_connection_error_after_retries() -> None:
    server = ScriptedServer().start()
    url = server.base_url
    server.stop()
    client = OpenAICompatibleClient(url, "m", retry=FAST_RETRY)
    with pytest.raises(ModelError) as caught:
        await client.complete(USER, [], SamplingSettings())
    await client.aclose()
    assert caught.value.kind == "connection"
    assert caught.value.attempts == 3
    assert "is it running?" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "tool", "finish"),
    [
        ("tuned-auto", "get_weather", "tool_calls"),
        ("smol-required", "convert_currency", "tool_calls"),
        ("smol-named", "get_weather", "tool_calls"),  # vLLM says "stop" here
        ("tuned-none", "get_weather", "tool_calls"),  # the call is only in `content`
        ("smol-auto", None, "stop"),
    ],
)
async def test_real_vllm_replies(name: str, tool: str | None, finish: str) -> None:
    capture = load_captures(name)[0]
    with ScriptedServer([ScriptedReply.captured(body=capture["response"])]) as server:
        client = client_for(server)
        turn = await client.complete(USER, [], SamplingSettings())
        await client.aclose()
    assert turn.finish_reason == finish
    assert [c.name for c in turn.tool_calls] == ([tool] if tool else [])
    if tool:
        assert isinstance(json.loads(turn.tool_calls[0].arguments), dict)


@pytest.mark.parametrize("name", ["tuned-stream", "smol-stream-required"])
async def test_real_vllm_streams_accumulate_by_index(name: str) -> None:
    capture = load_captures(name)[0]
    with ScriptedServer([ScriptedReply.captured(sse=capture["sse"])]) as server:
        client = client_for(server, stream=True)
        turn = await client.complete(USER, [], SamplingSettings())
        await client.aclose()
    assert len(turn.tool_calls) == 1
    call = turn.tool_calls[0]
    assert call.id.startswith("chatcmpl-tool-")
    assert isinstance(json.loads(call.arguments), dict)
    assert turn.finish_reason == "tool_calls"
    asked_for_usage = capture["request"].get("stream_options", {}).get("include_usage", False)
    assert (turn.usage.total_tokens > 0) == asked_for_usage


LLAMA = "llamacpp_captures.jsonl"


@pytest.mark.parametrize(
    ("name", "tool", "finish"),
    [
        ("llamacpp-named", "convert_units", "tool_calls"),
        ("llamacpp-auto-call", "calculate", "tool_calls"),
        ("llamacpp-auto-text", None, "length"),
        ("llamacpp-length", None, "length"),
    ],
)
async def test_real_llama_cpp_replies(name: str, tool: str | None, finish: str) -> None:
    capture = load_captures(name, LLAMA)[0]
    with ScriptedServer([ScriptedReply.captured(body=capture["response"])]) as server:
        client = client_for(server)
        turn = await client.complete(USER, [], SamplingSettings())
        await client.aclose()
    assert turn.finish_reason == finish
    assert [c.name for c in turn.tool_calls] == ([tool] if tool else [])
    if tool:
        # llama.cpp's ids look like `call__0_<name>_cmpl-…`, not vLLM's `chatcmpl-tool-…`
        assert turn.tool_calls[0].id.startswith("call__0_")


async def test_llama_cpp_call_with_a_raw_newline_in_a_string_is_rejected_by_the_gate() -> None:
    import tools
    from runtime import ToolRegistry
    from runtime.arguments import ArgumentGate, Rejection

    capture = load_captures("llamacpp-auto-call", LLAMA)[0]
    with ScriptedServer([ScriptedReply.captured(body=capture["response"])]) as server:
        client = client_for(server)
        turn = await client.complete(USER, [], SamplingSettings())
        await client.aclose()
    outcome = ArgumentGate(ToolRegistry.from_module(tools)).check(turn.tool_calls[0])
    assert isinstance(outcome, Rejection)
    assert "Invalid control character" in outcome.error.message


async def test_llama_cpp_500_for_an_invalid_request_is_not_retried() -> None:
    capture = load_captures("llamacpp-null-content", LLAMA)[0]
    reply = ScriptedReply.captured(status=500, body=capture["response"])
    with ScriptedServer([reply, reply, reply]) as server:
        client = client_for(server)
        with pytest.raises(ModelError) as caught:
            await client.complete(USER, [], SamplingSettings())
        await client.aclose()
    assert caught.value.kind == "bad_request"
    assert len(server.requests) == 1
