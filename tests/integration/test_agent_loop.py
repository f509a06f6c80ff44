"""The agent loop against the scripted server over real HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from runtime import CallStatus, tool
from runtime.agent import Agent, RunLimits, RunStatus
from runtime.model import OpenAICompatibleClient, RetryPolicy
from runtime.policy.decision import allow_all
from runtime.testing import ScriptedReply, ScriptedServer

FAST_RETRY = RetryPolicy(attempts=2, base_delay_s=0.001, max_delay_s=0.01)
calls_made: list[dict[str, Any]] = []


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: First addend.
        b: Second addend.
    """
    calls_made.append({"a": a, "b": b})
    return a + b


@tool(retries=1)
def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"exploded: {reason}")


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    calls_made.clear()


def agent_for(server: ScriptedServer, tools: list[Any], **kwargs: Any) -> Agent:
    client = OpenAICompatibleClient(
        server.base_url, server.model, retry=FAST_RETRY, stream=kwargs.pop("stream", False)
    )
    kwargs.setdefault("policy", allow_all())  # trusted test tools: the explicit opt-out
    return Agent(client, tools, **kwargs)


@pytest.mark.parametrize("stream", [False, True])
async def test_run_calls_tool_and_answers(stream: bool) -> None:
    replies = [ScriptedReply.call("add", {"a": 2, "b": 3}), ScriptedReply.message("2 + 3 = 5")]
    with ScriptedServer(replies) as server:
        agent = agent_for(server, [add], system_prompt="You add.", stream=stream)
        result = await agent.run("what is 2+3?", tenant="acme")
    assert result.status is RunStatus.COMPLETED
    assert result.output == "2 + 3 = 5"
    assert [(c.tool, c.status, c.result) for c in result.tool_calls] == [("add", CallStatus.OK, 5)]
    assert calls_made == [{"a": 2, "b": 3}]
    assert [m["role"] for m in result.messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    assert result.messages[3] == {
        "role": "tool",
        "tool_call_id": result.tool_calls[0].request.id,
        "content": "5",
    }
    assert result.usage.total_tokens > 0 and result.turns == 2
    sent = server.requests[1]
    assert sent["messages"][-1]["content"] == "5"
    assert sent["tools"][0]["function"]["name"] == "add"


async def test_rejected_calls_never_reach_the_tool_and_are_explained() -> None:
    replies = [
        ScriptedReply.calls(
            ("add", '{"a": "2", "b": 3}'),
            ("add", '{"a": 2}'),
            ("add", "{not json"),
            ("subtract", '{"a": 1}'),
        ),
        ScriptedReply.message("sorry"),
    ]
    with ScriptedServer(replies) as server:
        result = await agent_for(server, [add], limits=RunLimits()).run("add")
    assert calls_made == []
    statuses = [c.status for c in result.tool_calls]
    assert statuses == [
        CallStatus.INVALID_ARGUMENTS,
        CallStatus.INVALID_ARGUMENTS,
        CallStatus.INVALID_ARGUMENTS,
        CallStatus.UNKNOWN_TOOL,
    ]
    tool_messages = [m for m in server.requests[1]["messages"] if m["role"] == "tool"]
    bodies = [json.loads(m["content"])["error"] for m in tool_messages]
    assert "$.a: expected integer" in bodies[0]["error"]
    assert "$.b: required property is missing" in bodies[1]["error"]
    assert "not valid JSON" in bodies[2]["error"]
    assert "valid tools: add" in bodies[3]["error"]
    # the malformed call went back to the server as {} so vLLM would not answer 400
    resent = server.requests[1]["messages"][1]["tool_calls"][2]["function"]["arguments"]
    assert resent == "{}"


async def test_model_calling_tools_forever_stops_at_max_turns() -> None:
    with ScriptedServer(handler=lambda _: ScriptedReply.call("add", {"a": 1, "b": 1})) as server:
        result = await agent_for(server, [add], limits=RunLimits(max_turns=4)).run("loop")
    assert result.status is RunStatus.MAX_TURNS
    assert result.turns == 4 and len(server.requests) == 4
    assert "after 4 turns" in (result.error or "")


async def test_repeating_an_invalid_call_stops_at_the_retry_budget() -> None:
    with ScriptedServer(handler=lambda _: ScriptedReply.call("add", '{"a": "x"}')) as server:
        result = await agent_for(server, [add]).run("add")
    assert result.status is RunStatus.RETRIES_EXHAUSTED
    assert len(server.requests) == 3  # the default budget tolerates 2 failures
    assert "retry budget 2" in (result.error or "")
    assert calls_made == []


async def test_failing_tool_reports_tool_error_then_budget() -> None:
    replies = [ScriptedReply.call("explode", {"reason": "a"}), ScriptedReply.message("it failed")]
    with ScriptedServer(replies) as server:
        result = await agent_for(server, [explode]).run("go")
    assert result.status is RunStatus.COMPLETED
    outcome = result.tool_calls[0]
    assert outcome.status is CallStatus.TOOL_ERROR
    assert outcome.error is not None and outcome.error.type == "RuntimeError"
    assert "exploded: a" in outcome.error.message
    assert "Traceback" in outcome.error.details[0]
    assert "exploded: a" in server.requests[1]["messages"][-1]["content"]

    with ScriptedServer(handler=lambda _: ScriptedReply.call("explode", {"reason": "b"})) as server:
        result = await agent_for(server, [explode]).run("go")
    assert result.status is RunStatus.RETRIES_EXHAUSTED
    assert len(server.requests) == 2  # retries=1 on this tool


async def test_calls_of_one_turn_run_concurrently_within_the_bound() -> None:
    state = {"inside": 0, "max": 0}
    two_inside = asyncio.Event()

    @tool
    async def wait_for_peer(n: int) -> int:
        state["inside"] += 1
        state["max"] = max(state["max"], state["inside"])
        if state["inside"] == 2:
            two_inside.set()
        try:
            await asyncio.wait_for(two_inside.wait(), 5)
        finally:
            state["inside"] -= 1
        return n

    replies = [
        ScriptedReply.calls(*(("wait_for_peer", {"n": i}) for i in range(3))),
        ScriptedReply.message("done"),
    ]
    with ScriptedServer(replies) as server:
        agent = agent_for(server, [wait_for_peer], limits=RunLimits(max_parallel_calls=2))
        result = await agent.run("go")
    assert [c.status for c in result.tool_calls] == [CallStatus.OK] * 3
    assert [c.result for c in result.tool_calls] == [0, 1, 2]  # results keep proposal order
    assert state["max"] == 2


async def test_calls_beyond_the_per_turn_limit_are_refused_unrun() -> None:
    replies = [
        ScriptedReply.calls(*(("add", {"a": i, "b": 0}) for i in range(3))),
        ScriptedReply.message("ok"),
    ]
    with ScriptedServer(replies) as server:
        result = await agent_for(server, [add], limits=RunLimits(max_calls_per_turn=2)).run("go")
    assert [c.status for c in result.tool_calls] == [
        CallStatus.OK,
        CallStatus.OK,
        CallStatus.DENIED,
    ]
    assert len(calls_made) == 2


async def test_cancelling_a_run_cancels_its_in_flight_calls() -> None:
    started = asyncio.Event()
    seen: list[str] = []

    @tool
    async def hang() -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return "never"

    with ScriptedServer([ScriptedReply.call("hang", {})]) as server:
        task = asyncio.create_task(agent_for(server, [hang]).run("go"))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert seen == ["cancelled"]


async def test_per_call_timeout() -> None:
    @tool(timeout_s=0.2)
    async def slow() -> str:
        await asyncio.Event().wait()
        return "never"

    replies = [ScriptedReply.call("slow", {}), ScriptedReply.message("timed out")]
    with ScriptedServer(replies) as server:
        result = await agent_for(server, [slow]).run("go")
    assert result.tool_calls[0].status is CallStatus.TIMEOUT
    assert "0.2 s" in (result.tool_calls[0].error.message if result.tool_calls[0].error else "")
    assert result.status is RunStatus.COMPLETED


async def test_dead_model_server_is_a_status_not_a_crash() -> None:
    server = ScriptedServer().start()
    url = server.base_url
    server.stop()
    agent = Agent(OpenAICompatibleClient(url, "m", retry=FAST_RETRY), [add], policy=allow_all())
    result = await agent.run("hi")
    assert result.status is RunStatus.MODEL_ERROR
    assert result.error is not None and result.error.startswith("connection:")


async def test_model_server_errors_mid_run_end_the_run_with_model_error() -> None:
    replies = [ScriptedReply.call("add", {"a": 1, "b": 1})] + [
        ScriptedReply.failure(500, "oom")
    ] * 2
    with ScriptedServer(replies) as server:
        result = await agent_for(server, [add]).run("go")
    assert result.status is RunStatus.MODEL_ERROR
    assert "answered 500: oom" in (result.error or "")
    assert [c.status for c in result.tool_calls] == [CallStatus.OK]


async def test_few_shot_examples_precede_the_prompt() -> None:
    examples = [
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "2"},
    ]
    with ScriptedServer([ScriptedReply.message("ok")]) as server:
        await agent_for(server, [add], system_prompt="sys", examples=examples).run("2+2?")
    roles = [(m["role"], m["content"]) for m in server.requests[0]["messages"]]
    assert roles == [("system", "sys"), ("user", "1+1?"), ("assistant", "2"), ("user", "2+2?")]


async def test_answer_settings_apply_after_tool_results() -> None:
    from runtime.model import SamplingSettings

    replies = [ScriptedReply.call("add", {"a": 1, "b": 2}), ScriptedReply.message("3")]
    with ScriptedServer(replies) as server:
        agent = agent_for(
            server,
            [add],
            settings=SamplingSettings(tool_choice="required", max_tokens=64),
            answer_settings=SamplingSettings(tool_choice="none", max_tokens=32),
        )
        result = await agent.run("1+2")
    assert result.status is RunStatus.COMPLETED
    first, second = server.requests
    assert (first["tool_choice"], first["max_tokens"]) == ("required", 64)
    assert (second["tool_choice"], second["max_tokens"]) == ("none", 32)


def test_a_tool_choice_naming_no_tool_is_refused_at_construction() -> None:
    from runtime.model import SamplingSettings

    client = OpenAICompatibleClient("http://127.0.0.1:9/v1", "m")
    with pytest.raises(ValueError, match="tool_choice 'nope' is not one of this agent's tools"):
        Agent(client, [add], settings=SamplingSettings(tool_choice="nope"))
    with pytest.raises(ValueError, match="'nope'"):
        Agent(client, [add], answer_settings=SamplingSettings(tool_choice="nope"))
    assert Agent(client, [add], settings=SamplingSettings(tool_choice="add")).settings


async def test_audit_conversation_records_request_and_answer_redacted(tmp_path: Any) -> None:
    from runtime.audit.chain import HashChainSink
    from runtime.audit.verify import verify

    secret = "sk-" + "a1B2" * 10
    replies = [ScriptedReply.call("add", {"a": 2, "b": 3}), ScriptedReply.message("it is 5")]
    sink = HashChainSink(tmp_path / "audit.jsonl")
    with ScriptedServer(replies) as server:
        agent = agent_for(server, [add], audit=sink, audit_conversation=True)
        await agent.run(f"what is 2+3? my key is {secret}")
    sink.close()
    raw = (tmp_path / "audit.jsonl").read_text()
    records = [json.loads(line) for line in raw.splitlines()]
    started = next(r for r in records if r["event"] == "run.started")
    finished = next(r for r in records if r["event"] == "run.finished")
    assert started["fields"]["agentrt.prompt"].startswith("what is 2+3?")
    assert finished["fields"]["agentrt.output"] == "it is 5"
    assert secret not in raw
    assert verify([tmp_path / "audit.jsonl"]).ok
