"""Persisted approvals: decide, expire, and execute exactly once."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.approvals import (
    AlreadyClaimed,
    ApprovalError,
    ApprovalExpired,
    ApprovalNotFound,
    ApprovalRecheckFailed,
    ApprovalStatus,
    ApprovalStore,
    PendingCall,
)
from runtime.approvals.recheck import EditedArgumentsInvalid, approval_recheck
from runtime.arguments import ArgumentGate
from runtime.calls import CallContext
from runtime.policy.decision import PolicyDecision
from runtime.policy.engine import PolicySet
from runtime.policy.model import PolicyFile
from runtime.policy.ratelimit import InMemoryRateLimitStore

PENDING = PolicyDecision(
    decision="require_approval",
    rule_ids=("approve-big-refunds",),
    reason="big refund",
    approval_timeout_s=60.0,
)
CTX = CallContext(tenant="acme", agent="support-1", run_id="run-1", extra={"region": "eu"})


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[ApprovalStore]:
    opened = ApprovalStore(tmp_path / "approvals.db", clock=clock)
    yield opened
    opened.close()


def pending(store: ApprovalStore, call_id: str = "call-1", **args: Any) -> str:
    record = store.create(
        call_id=call_id,
        tool="issue_refund",
        arguments=args or {"amount": 150, "currency": "EUR"},
        decision=PENDING,
        context=CTX,
        run_state={"turn": 3, "messages": ["..."]},
    )
    return record.id


def test_create_persists_everything(store: ApprovalStore, tmp_path: Path, clock: Clock) -> None:
    approval_id = pending(store)
    reopened = ApprovalStore(tmp_path / "approvals.db", clock=clock)
    record = reopened.get(approval_id)
    assert record.status == ApprovalStatus.PENDING
    assert (record.tool, record.call_id, record.run_id) == ("issue_refund", "call-1", "run-1")
    assert record.arguments == {"amount": 150, "currency": "EUR"}
    assert record.decision["rule_ids"] == ["approve-big-refunds"]
    assert record.expires_at - record.created_at == 60.0
    assert record.call_context() == CTX
    assert reopened.load_run_state("run-1") == {"turn": 3, "messages": ["..."]}
    reopened.close()


def test_create_is_idempotent_per_call(store: ApprovalStore) -> None:
    assert pending(store) == pending(store)
    assert len(store.list()) == 1


def test_parallel_pending_calls_of_one_run_are_all_kept(store: ApprovalStore) -> None:
    calls = [
        PendingCall(f"c{i}", "run_python", {"code": f"print({i})"}, PENDING, CTX) for i in range(3)
    ]
    records = store.create_batch(calls, run_id="run-9", run_state={"paused": True})
    assert [r.call_id for r in records] == ["c0", "c1", "c2"]
    assert len(store.list(run_id="run-9", status="pending")) == 3
    store.approve(records[0].id)
    store.reject(records[1].id, reason="no")
    assert not store.run_is_resolved("run-9")
    store.approve(records[2].id)
    assert store.run_is_resolved("run-9")


def test_unserialisable_arguments_are_refused(store: ApprovalStore) -> None:
    with pytest.raises(ValueError):
        pending(store, amount=float("nan"))


def test_approve_then_execute_exactly_once(store: ApprovalStore) -> None:
    approval_id = pending(store)
    record = store.approve(approval_id, by="alice", note="ok")
    assert (record.status, record.decided_by) == (ApprovalStatus.APPROVED, "alice")
    claim = store.claim_for_execution(approval_id)
    assert claim.record.status == ApprovalStatus.EXECUTING
    done = store.mark_executed(approval_id, claim.token, {"status": "ok", "result": 42})
    assert done.status == ApprovalStatus.EXECUTED
    # A replayed resume must not run the call again, and learns the outcome.
    with pytest.raises(AlreadyClaimed) as info:
        store.claim_for_execution(approval_id)
    assert info.value.record.outcome == {"status": "ok", "result": 42}


def test_double_resume_racing_from_threads_runs_once(
    store: ApprovalStore, tmp_path: Path, clock: Clock
) -> None:
    approval_id = pending(store)
    store.approve(approval_id)
    # Half the racers use a second connection, as a second process would.
    other = ApprovalStore(tmp_path / "approvals.db", clock=clock)
    barrier = threading.Barrier(10)
    wins: list[str] = []
    losses: list[ApprovalStatus] = []
    lock = threading.Lock()

    def resume(target: ApprovalStore) -> None:
        barrier.wait()
        try:
            claim = target.claim_for_execution(approval_id)
        except AlreadyClaimed as exc:
            with lock:
                losses.append(exc.record.status)
            return
        with lock:
            wins.append(claim.token)

    threads = [
        threading.Thread(target=resume, args=(store if i % 2 else other,)) for i in range(10)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.close()
    assert len(wins) == 1 and len(losses) == 9


def test_crash_between_claim_and_result_is_never_rerun(
    store: ApprovalStore, tmp_path: Path, clock: Clock
) -> None:
    approval_id = pending(store)
    store.approve(approval_id)
    store.claim_for_execution(approval_id)
    store.close()  # the process dies before mark_executed
    restarted = ApprovalStore(tmp_path / "approvals.db", clock=clock)
    with pytest.raises(AlreadyClaimed) as info:
        restarted.claim_for_execution(approval_id)
    assert info.value.record.status == ApprovalStatus.EXECUTING
    assert [r.id for r in restarted.list(status="executing")] == [approval_id]
    abandoned = restarted.abandon(approval_id, by="ops", reason="checked: refund not issued")
    assert abandoned.status == ApprovalStatus.ABANDONED
    with pytest.raises(AlreadyClaimed):
        restarted.claim_for_execution(approval_id)
    restarted.close()


def test_a_live_claimant_is_told_apart_from_a_dead_one(
    store: ApprovalStore, tmp_path: Path, clock: Clock
) -> None:
    approval_id = pending(store)
    store.approve(approval_id)
    store.claim_for_execution(approval_id)
    other = ApprovalStore(tmp_path / "approvals.db", clock=clock)  # a second process
    assert other.claim_holder(approval_id) == os.getpid()
    with pytest.raises(AlreadyClaimed):
        other.claim_for_execution(approval_id)
    assert other.wait_for_claim(approval_id, 0.05).status == ApprovalStatus.EXECUTING
    store.close()  # the claimant dies: the kernel drops its lock
    assert other.claim_holder(approval_id) is None
    assert other.wait_for_claim(approval_id, 30).status == ApprovalStatus.EXECUTING
    other.close()


def test_a_second_process_waits_for_the_claimants_outcome(
    store: ApprovalStore, tmp_path: Path, clock: Clock
) -> None:
    approval_id = pending(store)
    store.approve(approval_id)
    claim = store.claim_for_execution(approval_id)
    other = ApprovalStore(tmp_path / "approvals.db", clock=clock)
    seen: list[Any] = []
    waiter = threading.Thread(target=lambda: seen.append(other.wait_for_claim(approval_id, 60)))
    waiter.start()
    store.mark_executed(approval_id, claim.token, {"status": "ok", "result": 7})
    waiter.join(60)
    assert seen and seen[0].status == ApprovalStatus.EXECUTED
    assert seen[0].outcome == {"status": "ok", "result": 7}
    assert other.claim_holder(approval_id) is None
    other.close()


def test_a_claim_given_back_unrun_can_be_claimed_again(store: ApprovalStore) -> None:
    approval_id = pending(store)
    store.approve(approval_id)
    claim = store.claim_for_execution(approval_id)
    assert store.unclaim(approval_id, claim.token).status == ApprovalStatus.APPROVED
    assert store.claim_holder(approval_id) is None
    again = store.claim_for_execution(approval_id)
    assert again.record.status == ApprovalStatus.EXECUTING


def test_mark_executed_needs_the_claim_token(store: ApprovalStore) -> None:
    approval_id = pending(store)
    store.approve(approval_id)
    store.claim_for_execution(approval_id)
    with pytest.raises(ApprovalError):
        store.mark_executed(approval_id, "forged", {"status": "ok"})


def test_reject_is_final(store: ApprovalStore) -> None:
    approval_id = pending(store)
    assert store.reject(approval_id, by="bob", reason="too big").status == ApprovalStatus.REJECTED
    with pytest.raises(ApprovalError) as info:
        store.approve(approval_id)
    assert info.value.status == ApprovalStatus.REJECTED
    with pytest.raises(ApprovalError):
        store.claim_for_execution(approval_id)


def test_timeout_expires_into_a_denial(store: ApprovalStore, clock: Clock) -> None:
    approval_id = pending(store)
    clock.now += 59.9
    assert store.get(approval_id).status == ApprovalStatus.PENDING
    clock.now += 0.1
    with pytest.raises(ApprovalExpired):
        store.approve(approval_id)
    assert store.get(approval_id).status == ApprovalStatus.EXPIRED
    with pytest.raises(ApprovalExpired):
        store.claim_for_execution(approval_id)


def test_claim_before_approval_is_refused(store: ApprovalStore) -> None:
    approval_id = pending(store)
    with pytest.raises(ApprovalError) as info:
        store.claim_for_execution(approval_id)
    assert info.value.status == ApprovalStatus.PENDING


def test_unknown_and_prefix_ids(store: ApprovalStore) -> None:
    approval_id = pending(store)
    assert store.get(approval_id[:8]).id == approval_id
    with pytest.raises(ApprovalNotFound):
        store.get("doesnotexist")


def _payments_policy() -> PolicySet:
    policy = PolicyFile.model_validate(
        {
            "apiVersion": "agentrt/v1",
            "kind": "ToolPolicy",
            "metadata": {"id": "pay"},
            "rules": [
                {
                    "id": "allow-small",
                    "effect": "allow",
                    "tools": ["issue_refund"],
                    "when": {"args.amount": {"lte": 100}},
                },
                {
                    "id": "approve-big-refunds",
                    "effect": "require_approval",
                    "tools": ["issue_refund"],
                    "when": {"args.amount": {"gt": 100}},
                },
                {
                    "id": "deny-huge",
                    "effect": "deny",
                    "tools": ["issue_refund"],
                    "when": {"not": {"args.amount": {"lte": 5000}}},
                },
            ],
        }
    )
    return PolicySet([policy], rate_limits=InMemoryRateLimitStore())


def test_edit_then_approve_rechecks_the_policy(store: ApprovalStore) -> None:
    approval_id = pending(store)
    recheck = approval_recheck(_payments_policy())
    with pytest.raises(ApprovalRecheckFailed) as info:
        store.approve(approval_id, arguments={"amount": 9000, "currency": "EUR"}, recheck=recheck)
    assert info.value.decision.rule_ids == ("deny-huge",)
    assert store.get(approval_id).status == ApprovalStatus.PENDING  # still decidable
    record = store.approve(
        approval_id, arguments={"amount": 120, "currency": "EUR"}, recheck=recheck
    )
    assert record.status == ApprovalStatus.APPROVED
    assert record.arguments_edited and record.effective_arguments == {
        "amount": 120,
        "currency": "EUR",
    }
    assert record.arguments == {"amount": 150, "currency": "EUR"}
    assert record.recheck_decision is not None and record.recheck_decision["decision"] == "allow"


def test_edit_then_approve_validates_through_the_argument_gate(store: ApprovalStore) -> None:
    from runtime import ToolRegistry, tool

    @tool
    def issue_refund(amount: float, currency: str) -> str:
        """Refund an amount."""
        return "ok"

    approval_id = pending(store)
    recheck = approval_recheck(_payments_policy(), ArgumentGate(ToolRegistry([issue_refund])))
    with pytest.raises(EditedArgumentsInvalid) as info:
        store.approve(approval_id, arguments={"amount": "lots", "currency": "EUR"}, recheck=recheck)
    assert info.value.error.type == "schema" and "amount" in str(info.value)
    assert store.get(approval_id).status == ApprovalStatus.PENDING
    unknown = approval_recheck(_payments_policy(), ArgumentGate(ToolRegistry([])))
    with pytest.raises(EditedArgumentsInvalid, match="no tool 'issue_refund'"):
        store.approve(approval_id, arguments={"amount": 1, "currency": "EUR"}, recheck=unknown)
    approved = store.approve(
        approval_id, arguments={"amount": 120, "currency": "EUR"}, recheck=recheck
    )
    assert approved.status == ApprovalStatus.APPROVED
