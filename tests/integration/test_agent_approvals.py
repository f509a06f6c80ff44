"""Human approval in the agent loop: pause, persist, resume exactly once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime import CallStatus, tool
from runtime.agent import Agent, ResumeError, RunStatus
from runtime.approvals.resume import run_approved
from runtime.approvals.store import ApprovalStatus, ApprovalStore
from runtime.model import OpenAICompatibleClient
from runtime.policy.loader import load_policies
from runtime.policy.ratelimit import InMemoryRateLimitStore
from runtime.testing import ScriptedReply, ScriptedServer

POLICY = """
apiVersion: agentrt/v1
kind: ToolPolicy
metadata: {id: refunds}
rules:
  - id: allow-small-refunds
    effect: allow
    tools: ["refund"]
    when: {args.amount: {lte: 100}}
  - id: approve-big-refunds
    effect: require_approval
    tools: ["refund"]
    when: {args.amount: {gt: 100}}
    approval: {timeout: "15m"}
  - id: deny-huge-refunds
    effect: deny
    tools: ["refund"]
    when: {args.amount: {gt: 10000}}
"""

executed: list[dict[str, Any]] = []


@tool
def refund(order: str, amount: float) -> str:
    """Refund an order.

    Args:
        order: Order id.
        amount: Amount in euros.
    """
    executed.append({"order": order, "amount": amount})
    return f"refunded {amount} on {order}"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _reset() -> None:
    executed.clear()


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "refunds.yaml").write_text(POLICY)
    return tmp_path / "policies"


def make_agent(server: ScriptedServer, policy_dir: Path, store: ApprovalStore) -> Agent:
    policy = load_policies(policy_dir, rate_limits=InMemoryRateLimitStore())
    client = OpenAICompatibleClient(server.base_url, server.model)
    return Agent(client, [refund], policy=policy, approvals=store, name="support")


async def test_parallel_pending_calls_pause_and_resume_exactly_once(
    tmp_path: Path, policy_dir: Path
) -> None:
    clock = Clock()
    store = ApprovalStore(tmp_path / "approvals.db", clock=clock)
    replies = [
        ScriptedReply.calls(
            ("refund", {"order": "A", "amount": 50}),
            ("refund", {"order": "B", "amount": 500}),
            ("refund", {"order": "C", "amount": 700}),
        ),
        ScriptedReply.message("A refunded; B refunded after approval; C was rejected"),
    ]
    with ScriptedServer(replies) as server:
        agent = make_agent(server, policy_dir, store)
        paused = await agent.run("refund A, B and C", tenant="acme")
        assert paused.status is RunStatus.PENDING_APPROVAL
        assert executed == [{"order": "A", "amount": 50}]
        assert len(paused.approval_ids) == 2
        statuses = {c.request.name + str(c.arguments): c.status for c in paused.tool_calls}
        assert list(statuses.values()).count(CallStatus.PENDING_APPROVAL) == 2
        records = {r.arguments["order"]: r for r in store.list(run_id=paused.run_id)}
        assert {k: r.status for k, r in records.items()} == {
            "B": ApprovalStatus.PENDING,
            "C": ApprovalStatus.PENDING,
        }

        still = await agent.resume(paused.run_id)
        assert still.status is RunStatus.PENDING_APPROVAL  # nobody decided yet
        assert executed == [{"order": "A", "amount": 50}]

        store.approve(records["B"].id)
        store.reject(records["C"].id, reason="not eligible")
        resumed = await agent.resume(paused.run_id)
        assert resumed.status is RunStatus.COMPLETED
        assert executed == [{"order": "A", "amount": 50}, {"order": "B", "amount": 500}]
        by_order = {c.arguments["order"]: c for c in resumed.tool_calls if c.arguments}
        assert by_order["B"].status is CallStatus.OK
        assert by_order["C"].status is CallStatus.DENIED
        assert "not eligible" in (by_order["C"].error.message if by_order["C"].error else "")

        with pytest.raises(ResumeError, match="already resumed"):
            await agent.resume(paused.run_id)
        assert len(executed) == 2
        assert store.get(records["B"].id).status is ApprovalStatus.EXECUTED

        # the model saw one tool message per call, pending ones replaced by real outcomes
        final_request = server.requests[-1]["messages"]
        tool_messages = [m for m in final_request if m["role"] == "tool"]
        assert len(tool_messages) == 3
        assert any("not eligible" in m["content"] for m in tool_messages)
    store.close()


async def test_a_second_process_resuming_the_same_approval_does_not_run_it_again(
    tmp_path: Path, policy_dir: Path
) -> None:
    store = ApprovalStore(tmp_path / "approvals.db")
    with ScriptedServer(
        [ScriptedReply.call("refund", {"order": "B", "amount": 500}), ScriptedReply.message("ok")]
    ) as server:
        agent = make_agent(server, policy_dir, store)
        paused = await agent.run("refund B")
        store.approve(paused.approval_ids[0])
        record = store.get(paused.approval_ids[0])
        # Two pipelines (as two processes would) race for the same approved call.
        first = await run_approved(agent.pipeline, record, store, record.call_context())
        second = await run_approved(agent.pipeline, record, store, record.call_context())
    assert first.status is CallStatus.OK and second.status is CallStatus.OK
    assert second.result == first.result
    assert executed == [{"order": "B", "amount": 500.0}]
    store.close()


async def test_edited_arguments_are_validated_and_policy_checked_again(
    tmp_path: Path, policy_dir: Path
) -> None:
    store = ApprovalStore(tmp_path / "approvals.db")
    with ScriptedServer(
        [ScriptedReply.call("refund", {"order": "B", "amount": 500}), ScriptedReply.message("ok")]
    ) as server:
        agent = make_agent(server, policy_dir, store)
        paused = await agent.run("refund B")
        # A reviewer edits the amount to one a deny rule forbids: the recheck at resume refuses.
        store.approve(paused.approval_ids[0], arguments={"order": "B", "amount": 50_000})
        resumed = await agent.resume(paused.run_id)
    assert executed == []
    outcome = resumed.tool_calls[0]
    assert outcome.status is CallStatus.DENIED
    assert outcome.decision is not None and "deny-huge-refunds" in outcome.decision.rule_ids
    store.close()


async def test_edited_arguments_that_break_the_schema_are_rejected(
    tmp_path: Path, policy_dir: Path
) -> None:
    store = ApprovalStore(tmp_path / "approvals.db")
    with ScriptedServer(
        [ScriptedReply.call("refund", {"order": "B", "amount": 500}), ScriptedReply.message("ok")]
    ) as server:
        agent = make_agent(server, policy_dir, store)
        paused = await agent.run("refund B")
        store.approve(paused.approval_ids[0], arguments={"order": "B", "amount": "500"})
        resumed = await agent.resume(paused.run_id)
    assert executed == []
    assert resumed.tool_calls[0].status is CallStatus.INVALID_ARGUMENTS


async def test_an_approval_that_times_out_is_denied(tmp_path: Path, policy_dir: Path) -> None:
    clock = Clock()
    store = ApprovalStore(tmp_path / "approvals.db", clock=clock)
    with ScriptedServer(
        [ScriptedReply.call("refund", {"order": "B", "amount": 500}), ScriptedReply.message("ok")]
    ) as server:
        agent = make_agent(server, policy_dir, store)
        paused = await agent.run("refund B")
        clock.now += 16 * 60
        resumed = await agent.resume(paused.run_id)
    assert executed == []
    assert resumed.status is RunStatus.COMPLETED
    assert resumed.tool_calls[0].status is CallStatus.DENIED
    assert resumed.tool_calls[0].error is not None
    assert resumed.tool_calls[0].error.type == "approval_expired"
    store.close()


async def test_without_a_store_a_pending_call_stops_the_run_and_never_runs(
    policy_dir: Path,
) -> None:
    with ScriptedServer([ScriptedReply.call("refund", {"order": "B", "amount": 500})]) as server:
        policy = load_policies(policy_dir, rate_limits=InMemoryRateLimitStore())
        agent = Agent(
            OpenAICompatibleClient(server.base_url, server.model), [refund], policy=policy
        )
        result = await agent.run("refund B")
    assert result.status is RunStatus.PENDING_APPROVAL
    assert "no approval store" in (result.error or "")
    assert executed == []
    assert json.dumps(result.to_dict())  # serialisable
