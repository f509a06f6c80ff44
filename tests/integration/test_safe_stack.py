"""The library is safe by default, as the CLI is (issue 13, case 1 and "one stack").

- An `Agent` given a policy and a `HashChainSink` redacts the policy's
  `audit.redact` paths itself: the card number never reaches the log in clear.
- An `Agent` without a policy runs no tool: the call is `denied`, audited,
  and the tool never runs; only an explicit `allow_all()` runs every call.
- `build_stack` builds the same safe stack the CLI uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime import CallStatus, tool
from runtime.agent import Agent, RunStatus
from runtime.audit.chain import HashChainSink
from runtime.audit.events import Event, Field
from runtime.audit.query import iter_records
from runtime.audit.tracing import TracingSink
from runtime.audit.verify import verify
from runtime.model import OpenAICompatibleClient
from runtime.policy.decision import AllowAllPolicy, allow_all
from runtime.policy.engine import PolicySet
from runtime.policy.loader import load_policies
from runtime.policy.ratelimit import InMemoryRateLimitStore
from runtime.stack import StackError, build_stack
from runtime.testing import ScriptedReply, ScriptedServer

CARD = "4111111111111111"
POLICY = """\
apiVersion: agentrt/v1
kind: ToolPolicy
metadata: {id: payments}
rules:
  - id: allow-charges
    effect: allow
    tools: [charge]
audit:
  redact: ["args.card.number"]
"""

charged: list[str] = []


@tool
def charge(card: dict[str, str], amount: int) -> str:
    """Charge a card.

    Args:
        card: The card, with its `number`.
        amount: Cents.
    """
    charged.append(card["number"])
    return "charged"


@pytest.fixture(autouse=True)
def _reset() -> None:
    charged.clear()


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "payments.yaml").write_text(POLICY)
    return directory


def _server() -> ScriptedServer:
    arguments = {"card": {"number": CARD, "holder": "Ada"}, "amount": 500}
    return ScriptedServer([ScriptedReply.call("charge", arguments), ScriptedReply.message("done")])


def _records(log: Path) -> list[dict[str, Any]]:
    return [record for _line, record in iter_records([log])]


@pytest.mark.parametrize("wrap", [False, True], ids=["hash-chain", "tracing-wrapped"])
async def test_an_agent_redacts_its_policys_paths_in_the_audit_log(
    tmp_path: Path, policy_dir: Path, wrap: bool
) -> None:
    log = tmp_path / "audit.jsonl"
    policy = load_policies(policy_dir, rate_limits=InMemoryRateLimitStore())
    chain = HashChainSink(log)  # no redact_paths given: the agent wires the policy's
    sink = TracingSink(chain) if wrap else chain
    with _server() as server:
        client = OpenAICompatibleClient(server.base_url, server.model)
        result = await Agent(client, [charge], policy=policy, audit=sink).run("charge it")
        await client.aclose()
    sink.close()
    assert result.status is RunStatus.COMPLETED
    assert charged == [CARD]  # the tool itself got the real number
    text = log.read_text()
    assert CARD not in text
    by_event = {record["event"]: record["fields"] for record in _records(log)}
    assert Event.TOOL_PROPOSED in by_event and Event.TOOL_VALIDATED in by_event
    validated = by_event[Event.TOOL_VALIDATED][Field.ARGUMENTS]
    assert validated["card"]["holder"] == "Ada"  # only the named path is redacted
    assert validated["card"]["number"] != CARD
    assert verify([log]).ok


async def test_an_agent_without_a_policy_runs_no_tool_and_says_why(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    sink = HashChainSink(log)
    with _server() as server:
        client = OpenAICompatibleClient(server.base_url, server.model)
        result = await Agent(client, [charge], audit=sink).run("charge it")
        await client.aclose()
    sink.close()
    assert charged == []
    [call] = result.tool_calls
    assert call.status is CallStatus.DENIED and call.error is not None
    assert "no policy is configured" in call.error.message
    assert "allow_all()" in call.error.message  # says how to opt out
    ends = [
        r for r in _records(log) if Field.STATUS in r["fields"] and r["event"] != "run.finished"
    ]
    assert [(r["event"], r["fields"][Field.STATUS]) for r in ends] == [
        (Event.TOOL_DENIED, "denied")
    ]
    assert ends[0]["fields"][Field.RULE_IDS] == ["no-policy"]
    assert verify([log]).ok


async def test_allow_all_is_the_explicit_opt_out() -> None:
    with _server() as server:
        client = OpenAICompatibleClient(server.base_url, server.model)
        result = await Agent(client, [charge], policy=allow_all()).run("charge it")
        await client.aclose()
    assert result.status is RunStatus.COMPLETED
    assert [call.status for call in result.tool_calls] == [CallStatus.OK]
    assert charged == [CARD]


async def test_build_stack_builds_the_safe_stack(tmp_path: Path, policy_dir: Path) -> None:
    log = tmp_path / "audit.jsonl"
    stack = build_stack(
        [charge],
        policy=policy_dir,
        sandbox="inprocess",
        audit_log=log,
        approvals_db=tmp_path / "approvals.db",
        tenant="acme",
        context={"region": "eu"},
    )
    async with stack:
        assert isinstance(stack.policy, PolicySet)
        assert stack.approvals is not None and stack.context.tenant == "acme"
        assert stack.context.extra == {"region": "eu"}
        pipeline = stack.pipeline()
        from runtime import ToolCallRequest

        arguments = json.dumps({"card": {"number": CARD, "holder": "Ada"}, "amount": 1})
        outcome = await pipeline.process(ToolCallRequest("c1", "charge", arguments), stack.context)
    assert outcome.status is CallStatus.OK
    assert CARD not in log.read_text()
    assert verify([log]).ok


async def test_build_stack_defaults_to_the_shipped_policy_and_docker(tmp_path: Path) -> None:
    stack = build_stack([charge], audit_log=None, approvals_db=None)
    async with stack:
        assert isinstance(stack.policy, PolicySet)
        assert stack.executor.name == "docker"
        # the shipped least-privilege policy names no `charge`: default deny
        decision = stack.policy.preview("charge", {"card": {}, "amount": 1}, stack.context)
        assert decision.decision == "deny"


def test_build_stack_refuses_a_missing_policy_and_opts_out_only_when_told(
    tmp_path: Path,
) -> None:
    with pytest.raises(StackError, match="does not exist"):
        build_stack([charge], policy=tmp_path / "nope", audit_log=None)
    stack = build_stack(
        [charge], policy=allow_all(), sandbox="inprocess", audit_log=None, approvals_db=None
    )
    assert isinstance(stack.policy, AllowAllPolicy)
    assert stack.approvals is None  # allow_all never asks a human
    with pytest.raises(StackError, match="defines no @tool"):
        build_stack("json", audit_log=None)
