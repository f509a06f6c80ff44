"""Prompt composition inside real agent runs, against the scripted server over HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runtime import CallStatus, tool
from runtime.agent import Agent, RunStatus
from runtime.model import OpenAICompatibleClient, SamplingSettings
from runtime.model.settings import SettingsError
from runtime.policy.decision import allow_all
from runtime.prompting import Prompt, PromptError, PromptTemplate
from runtime.testing import ScriptedReply, ScriptedServer

ran: list[str] = []


@tool
def lookup(city: str) -> str:
    """Look up a city's timezone.

    Args:
        city: City name.
    """
    ran.append(city)
    return "Europe/Paris"


class RecordingSink:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def write(self, event: str, fields: Any) -> None:
        self.records.append({"event": event, **fields})

    def close(self) -> None:
        return None


@pytest.fixture(autouse=True)
def _reset() -> None:
    ran.clear()


def agent_for(server: ScriptedServer, **kwargs: Any) -> Agent:
    kwargs.setdefault("policy", allow_all())  # a trusted test tool: the explicit opt-out
    return Agent(OpenAICompatibleClient(server.base_url, server.model), [lookup], **kwargs)


def _call_text(arguments: dict[str, Any]) -> str:
    payload = json.dumps({"name": "lookup", "arguments": arguments})
    return f"<tool_call>{payload}</tool_call>"


async def test_think_first_reasoning_stays_out_of_answer_and_history() -> None:
    replies = [
        ScriptedReply.message(f"<think>The user wants Paris; SECRET-PLAN</think>{_call_text({'city': 'Paris'})}"),
        ScriptedReply.message("<think>tool said Europe/Paris, SECRET-2</think>Paris is on Europe/Paris time."),
    ]  # fmt: skip
    audit = RecordingSink()
    with ScriptedServer(replies) as server:
        agent = agent_for(
            server, prompt=Prompt(think_first=True), audit=audit, audit_conversation=True
        )
        result = await agent.run("Paris tz?")
    assert result.status is RunStatus.COMPLETED
    finished = next(r for r in audit.records if r["event"] == "run.finished")
    assert finished["agentrt.reasoning"] == result.reasoning
    assert "SECRET" not in finished["agentrt.output"]
    assert result.output == "Paris is on Europe/Paris time."
    assert ran == ["Paris"]
    assert len(result.reasoning) == 2 and "SECRET-PLAN" in result.reasoning[0]
    sent_second = json.dumps(server.requests[1]["messages"])
    assert "SECRET" not in sent_second and "SECRET" not in json.dumps(result.messages)
    assert "<think>" in server.requests[0]["messages"][0]["content"]  # the instruction


async def test_reasoning_in_arguments_is_rejected_unrun() -> None:
    audit = RecordingSink()
    leaked = _call_text({"city": "<think>maybe Lyon</think>Paris"})
    replies = [ScriptedReply.message(leaked), ScriptedReply.message("sorry")]
    with ScriptedServer(replies) as server:
        result = await agent_for(server, prompt=Prompt(think_first=True), audit=audit).run("tz?")
    assert ran == []
    assert [c.status for c in result.tool_calls] == [CallStatus.INVALID_ARGUMENTS]
    assert result.tool_calls[0].error is not None
    assert result.tool_calls[0].error.type == "reasoning_in_arguments"
    events = [r["event"] for r in audit.records]
    assert events.count("tool.proposed") == 1 and events.count("tool.rejected") == 1
    tool_message = server.requests[1]["messages"][-1]
    assert tool_message["role"] == "tool" and "reasoning" in tool_message["content"]


async def test_tools_in_prompt_sends_no_tools_and_text_history() -> None:
    replies = [
        ScriptedReply.message(_call_text({"city": "Oslo"})),
        ScriptedReply.message("Oslo: CET"),
    ]
    with ScriptedServer(replies) as server:
        agent = agent_for(server, prompt=Prompt(system="Be brief.", tools_in_prompt=True))
        result = await agent.run("Oslo tz?")
    assert result.status is RunStatus.COMPLETED and ran == ["Oslo"]
    first, second = server.requests
    assert "tools" not in first and "tool_choice" not in first
    assert first["messages"][0]["content"].startswith("Be brief.\n\n# Tools")
    assert '"name": "lookup"' in first["messages"][0]["content"]
    roles = [m["role"] for m in second["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert "<tool_call>" in second["messages"][2]["content"]
    assert second["messages"][3]["content"].startswith("<tool_response>")
    # The runtime's own record stays structured.
    assert [m["role"] for m in result.messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]


async def test_template_and_examples_reach_the_server_in_order() -> None:
    example = [
        {"role": "user", "content": "Rome tz?"},
        {"role": "assistant", "tool_calls": [{"function": {"name": "lookup", "arguments": {"city": "Rome"}}}]},
        {"role": "tool", "content": "Europe/Rome"},
        {"role": "assistant", "content": "Europe/Rome."},
    ]  # fmt: skip
    prompt = Prompt(
        system=PromptTemplate(role="You answer timezone questions."), examples=[example]
    )
    with ScriptedServer([ScriptedReply.message("ok")]) as server:
        await agent_for(server, prompt=prompt).run("Oslo tz?")
    sent = server.requests[0]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert sent[0]["content"].startswith("You answer timezone questions.\n\n# Using tools")
    assert sent[2]["tool_calls"][0]["id"] == sent[3]["tool_call_id"] == "example-1-call-1"
    assert sent[-1]["content"] == "Oslo tz?"


def test_invalid_example_fails_at_construction() -> None:
    bad = [
        {"role": "user", "content": "Rome tz?"},
        {"role": "assistant", "tool_calls": [{"function": {"name": "lookup", "arguments": {"town": "Rome"}}}]},
        {"role": "tool", "content": "Europe/Rome"},
    ]  # fmt: skip
    client = OpenAICompatibleClient("http://127.0.0.1:9/v1", "m")
    with pytest.raises(PromptError, match="example 1, message 2"):
        Agent(client, [lookup], examples=[bad])


class Passages:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.asked: list[str] = []

    async def amessages_for(self, prompt: str) -> list[dict[str, Any]]:
        self.asked.append(prompt)
        if self.fail:
            raise OSError("index file gone")
        return [{"role": "system", "content": "[1] tz.md:1-3 Paris uses CET."}]


async def test_retrieval_context_goes_just_before_the_request() -> None:
    retrieval = Passages()
    with ScriptedServer([ScriptedReply.message("CET [1]")]) as server:
        result = await agent_for(server, system_prompt="sys", retrieval=retrieval).run("Paris?")
    assert retrieval.asked == ["Paris?"]
    sent = server.requests[0]["messages"]
    assert [m["content"] for m in sent] == ["sys", "[1] tz.md:1-3 Paris uses CET.", "Paris?"]
    assert result.output == "CET [1]"


async def test_failing_retrieval_is_a_status_and_asks_no_model() -> None:
    with ScriptedServer([ScriptedReply.message("never")]) as server:
        result = await agent_for(server, retrieval=Passages(fail=True)).run("Paris?")
    assert result.status is RunStatus.CONTEXT_ERROR
    assert "index file gone" in (result.error or "")
    assert server.requests == []


async def test_presets_per_phase() -> None:
    replies = [ScriptedReply.call("lookup", {"city": "Paris"}), ScriptedReply.message("CET")]
    with ScriptedServer(replies) as server:
        agent = agent_for(server, settings="precise", answer_settings="balanced")
        await agent.run("Paris?")
    first, second = server.requests
    assert (first["temperature"], first["seed"]) == (0.0, 0)
    assert (second["temperature"], second["top_p"]) == (0.6, 0.9) and "seed" not in second


def test_unknown_preset_and_impossible_values_fail_early() -> None:
    client = OpenAICompatibleClient("http://127.0.0.1:9/v1", "m")
    with pytest.raises(SettingsError, match="unknown preset 'fast'"):
        Agent(client, [lookup], settings="fast")
    with pytest.raises(SettingsError, match="top_p: Input should be less than or equal to 1"):
        SamplingSettings.preset("balanced", top_p=1.5)
