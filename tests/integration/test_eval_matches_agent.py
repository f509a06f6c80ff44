"""An evaluation sends exactly what an `Agent` configured the same way sends.

Both go through `RequestBuilder`; the scripted server records the request
bodies on the wire, so a difference in prompt composition, tools rendering or
request fields (sampling, seed, tool_choice) shows up here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pydantic
import pytest

from runtime import tool
from runtime.agent import Agent, RunStatus
from runtime.finetune.eval_variants import Variant, predict_variant
from runtime.finetune.evaluate import EvalItem
from runtime.model import OpenAICompatibleClient
from runtime.policy.decision import AllowAllPolicy
from runtime.prompting import Prompt, PromptTemplate
from runtime.testing import ScriptedReply, ScriptedServer

MAX_TOKENS = 48
PROMPT = "Timezone of Paris?"


@tool
def lookup(city: Annotated[str, pydantic.Field(max_length=4096)]) -> str:
    """Look up a city's timezone.

    Args:
        city: City name.
    """
    return "Europe/Paris"


def _examples(path: Path) -> Path:
    example = {
        "messages": [
            {"role": "user", "content": "Timezone of Rome?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "lookup", "arguments": '{"city": "Rome"}'}}],
            },
            {"role": "tool", "content": "Europe/Rome"},
            {"role": "assistant", "content": "Europe/Rome."},
        ]
    }
    path.write_text(json.dumps(example) + "\n")
    return path


def _variant(kind: str, tmp_path: Path) -> Variant:
    if kind == "plain":
        return Variant(label=kind)
    if kind == "full":
        template = PromptTemplate(role="You are the timezone desk.", rules=("One line.",))
        prompt = Prompt(
            system=template, examples=_examples(tmp_path / "ex.jsonl"), think_first=True
        )
        return Variant(label=kind, prompt=prompt)
    if kind == "tools_in_prompt":
        return Variant(label=kind, prompt=Prompt(tools_in_prompt=True))
    return Variant(label=kind, preset="precise")


@pytest.mark.parametrize("kind", ["plain", "full", "tools_in_prompt", "preset"])
async def test_eval_sends_what_the_agent_sends(kind: str, tmp_path: Path) -> None:
    variant = _variant(kind, tmp_path)
    replies = [ScriptedReply.call("lookup", {"city": "Paris"}), ScriptedReply.message("CET.")] * 2
    with ScriptedServer(replies) as server:
        agent = Agent(
            OpenAICompatibleClient(server.base_url, server.model),
            [lookup],
            prompt=variant.prompt,
            settings=variant.sampling(MAX_TOKENS),
            policy=AllowAllPolicy(),
        )
        result = await agent.run(PROMPT)
        assert result.status is RunStatus.COMPLETED and result.turns == 2
        # The same two turns as evaluation items: the request, and the answer
        # after the tool result (the run's own history, from the user's message).
        start = result.messages.index({"role": "user", "content": PROMPT})
        conversation = result.messages[start:-1]
        assert [m["role"] for m in conversation] == ["user", "assistant", "tool"]
        schemas = agent.registry.openai_schemas()
        items = [
            EvalItem("request", conversation[:1], schemas, [], "single"),
            EvalItem("answer", conversation, schemas, [], "answer", "answer"),
        ]
        runs = await predict_variant(
            server.base_url, server.model, items, variant, max_tokens=MAX_TOKENS, progress=False
        )
    assert all(not run.prediction.error for run in runs)
    agent_sent, eval_sent = server.requests[:2], server.requests[2:]
    assert eval_sent == agent_sent
    # The cases differ in what they send, so equality above is not vacuous.
    first: dict[str, Any] = agent_sent[0]
    sent_tools = json.dumps(first.get("tools", first["messages"][0]["content"]))
    assert "4096" not in sent_tools and "city" in sent_tools  # model-facing schema
    assert ("tools" in first) is (kind != "tools_in_prompt")
    assert (first["messages"][0]["role"] == "system") is (kind in ("full", "tools_in_prompt"))
    assert first.get("seed") == 0 and first["max_tokens"] == MAX_TOKENS
