"""Pausing a run for humans and resuming it: persist, claim, re-check, run once.

A turn whose calls need approval is persisted with the run's state
(`pause`); once humans decided, `decided_calls` reads them back and
`run_approved` takes each to its final status through the same pipeline
stages as any call: edited arguments are validated by the `ArgumentGate`,
the policy re-decides as an approved call (`PolicyEngine.decide_approved`),
and the call is claimed in the store before it runs, so it runs at most once
however many processes resume it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from runtime.approvals.records import (
    AlreadyClaimed,
    ApprovalRecord,
    ApprovalStatus,
    PendingCall,
)
from runtime.approvals.run_state import SavedRun
from runtime.arguments import Rejection
from runtime.audit import events
from runtime.audit.sink import AuditWriteError
from runtime.calls import CallContext, CallStatus, ErrorInfo, ToolCallRequest
from runtime.policy.decision import PolicyDecision

if TYPE_CHECKING:
    from runtime.approvals.store import ApprovalStore
    from runtime.pipeline import CallOutcome, ToolCallPipeline

__all__ = [
    "CLAIM_WAIT_MARGIN_S",
    "ResumeError",
    "decided_calls",
    "outcome_from_record",
    "pause",
    "run_approved",
]

# How much longer than a claimant's own backstop a second resume waits for its outcome.
CLAIM_WAIT_MARGIN_S = 10.0

_NO_DECISION = PolicyDecision(decision="require_approval", reason="approval required")


class ResumeError(LookupError, ValueError):
    """A run cannot be resumed: no approval store, no such paused run, or already resumed."""


async def pause(
    store: ApprovalStore,
    pending: Sequence[CallOutcome],
    context: CallContext,
    *,
    run_id: str,
    saved: SavedRun | None = None,
) -> dict[str, str]:
    """Persist the calls of a turn that wait for a human, with the run's state.

    One transaction: a crash leaves either all of them or none. Without
    `saved` (one call, no agent run: `agentrt call`) there is no run to resume.

    Returns:
        The approval id of each call id.
    """
    records = await asyncio.to_thread(
        store.create_batch,
        [
            PendingCall(
                o.request.id, o.tool, o.arguments or {}, o.decision or _NO_DECISION, context
            )
            for o in pending
        ],
        run_id=run_id,
        run_state=saved.to_json() if saved is not None else None,
    )
    return {record.call_id: record.id for record in records}


async def decided_calls(
    store: ApprovalStore, run_id: str
) -> tuple[SavedRun, list[ApprovalRecord], list[str]]:
    """A paused run, its approvals, and the ids of those still waiting for a human.

    Raises:
        ResumeError: The store has no paused run `run_id`, or it was already resumed.
    """
    # SQLite calls are brief but blocking: keep them off the event loop.
    saved = await asyncio.to_thread(store.load_run_state, run_id)
    if saved is None:
        raise ResumeError(f"no paused run {run_id!r} in the approval store")
    run = SavedRun.from_json(saved)
    if run.resumed:
        raise ResumeError(f"run {run_id} was already resumed; its approved calls ran once")
    records = await asyncio.to_thread(store.list, run_id=run_id)
    waiting = [r.id for r in records if r.status == ApprovalStatus.PENDING]
    return run, records, waiting


async def mark_resumed(store: ApprovalStore, run: SavedRun) -> None:
    """Record that the decided calls ran: a second resume must not replay the conversation."""
    run.resumed = True
    await asyncio.to_thread(store.save_run_state, run.run_id, run.to_json())


async def run_approved(
    pipeline: ToolCallPipeline,
    record: ApprovalRecord,
    store: ApprovalStore,
    context: CallContext,
) -> CallOutcome:
    """Take a call a human decided on to its final status, running it at most once.

    Approved calls are claimed in the store before anything runs; edited
    arguments are validated and the policy re-decides (deny rules and
    limits still apply). Rejected and expired approvals become `denied`.
    A call another process claimed is never run here: this waits for
    that process's outcome and returns it; if that process stops without
    one, the call is `sandbox_error` (`interrupted`) for an operator to
    check, and if it is still running after its own time limits,
    `sandbox_error` (`running_elsewhere`).
    """
    from runtime.pipeline import CallOutcome

    started = time.perf_counter()
    try:
        outcome = await _run_approved(pipeline, record, store, context)
    except AuditWriteError as exc:
        outcome = CallOutcome(
            _request(record),
            CallStatus.AUDIT_ERROR,
            arguments=record.effective_arguments,
            error=ErrorInfo(
                type="audit_unavailable",
                message=(
                    f"the audit log cannot be written, so the call of approval {record.id} "
                    f"was not run (resume it once the log is writable): {exc}"
                ),
            ),
            approval_id=record.id,
        )
    return dataclasses.replace(outcome, duration_ms=(time.perf_counter() - started) * 1000)


def _request(record: ApprovalRecord) -> ToolCallRequest:
    return ToolCallRequest(
        id=record.call_id, name=record.tool, arguments=json.dumps(record.effective_arguments)
    )


async def _run_approved(
    pipeline: ToolCallPipeline,
    record: ApprovalRecord,
    store: ApprovalStore,
    context: CallContext,
) -> CallOutcome:
    from runtime.pipeline import CallOutcome

    request = _request(record)
    base = pipeline.call_fields(request, context)
    status = ApprovalStatus(record.status)
    if status in (ApprovalStatus.REJECTED, ApprovalStatus.EXPIRED, ApprovalStatus.ABANDONED):
        reason = record.note or f"a human did not approve this call ({status.value})"
        error = ErrorInfo(type=f"approval_{status.value}", message=reason)
        pipeline.record(
            events.approval_closed(base, record.id, error, expired=status is ApprovalStatus.EXPIRED)
        )
        return CallOutcome(
            request,
            CallStatus.DENIED,
            arguments=record.effective_arguments,
            error=error,
            approval_id=record.id,
        )
    try:
        claim = await asyncio.to_thread(store.claim_for_execution, record.id)
    except AlreadyClaimed as exc:
        return await _claimed_elsewhere(pipeline, request, store, exc.record)
    try:
        pipeline.record(
            events.approval_granted(
                base, record.id, record.effective_arguments, edited=record.arguments_edited
            )
        )
        outcome = await _run_claimed(pipeline, request, record, context, base)
    except AuditWriteError:
        # Raised only before the tool ran (`execute` keeps a failure after it
        # in the outcome): give the claim back so the call can be resumed later.
        await asyncio.to_thread(store.unclaim, record.id, claim.token)
        raise
    except BaseException:  # cancelled mid-call: it may have run; an operator decides
        store.forget_claim(record.id)
        raise
    outcome = dataclasses.replace(outcome, approval_id=record.id)
    await asyncio.to_thread(store.mark_executed, record.id, claim.token, outcome.to_dict())
    return outcome


async def _claimed_elsewhere(
    pipeline: ToolCallPipeline,
    request: ToolCallRequest,
    store: ApprovalStore,
    record: ApprovalRecord,
) -> CallOutcome:
    """Another resume claimed this call: its stored outcome, once a live claimant is done."""
    from runtime.pipeline import TIMEOUT_GRACE_S

    if record.outcome is None and record.status in (
        ApprovalStatus.APPROVED,
        ApprovalStatus.EXECUTING,
    ):
        tool = pipeline.registry.get(record.tool)
        # The claimant gives up on the call by its own backstop (see `execute`).
        wait_s = CLAIM_WAIT_MARGIN_S + TIMEOUT_GRACE_S + (tool.timeout_s if tool else 60.0)
        wait_s += float(getattr(pipeline.executor, "sandbox_wait_s", 0.0) or 0.0)
        record = await asyncio.to_thread(store.wait_for_claim, record.id, wait_s)
    holder = None
    if record.outcome is None:
        holder = await asyncio.to_thread(store.claim_holder, record.id)
    return outcome_from_record(request, record, holder)


async def _run_claimed(
    pipeline: ToolCallPipeline,
    request: ToolCallRequest,
    record: ApprovalRecord,
    context: CallContext,
    base: dict[str, object],
) -> CallOutcome:
    tool = pipeline.registry.get(record.tool)
    if tool is None:
        return pipeline.rejected(
            Rejection(
                request,
                CallStatus.UNKNOWN_TOOL,
                ErrorInfo(type="unknown_tool", message=f"tool {record.tool!r} no longer exists"),
            ),
            dict(base),
        )
    checked = pipeline.gate.validate(request, tool, record.effective_arguments)
    if isinstance(checked, Rejection):
        return pipeline.rejected(checked, dict(base))
    decision = pipeline.policy.decide_approved(tool.name, checked.arguments, context)
    pipeline.record(events.policy_decided(base, decision, approved=True))
    if decision.decision != "allow":
        return pipeline.denied(request, checked.arguments, decision, dict(base))
    granted = dataclasses.replace(context, grants=frozenset(decision.grants))
    return await pipeline.execute(checked, granted, dict(base), decision)


def outcome_from_record(
    request: ToolCallRequest, record: ApprovalRecord, holder: int | None = None
) -> CallOutcome:
    """The stored outcome of an approval that was already claimed.

    Without one: `running_elsewhere` while a live process (`holder`, a pid)
    still runs it, else `interrupted` (its claimant is gone, or an operator
    abandoned it).
    """
    from runtime.pipeline import CallOutcome

    stored = record.outcome if isinstance(record.outcome, dict) else None
    if stored is None and holder is not None:
        return CallOutcome(
            request,
            CallStatus.SANDBOX_ERROR,
            arguments=record.effective_arguments,
            error=ErrorInfo(
                type="running_elsewhere",
                message=(
                    f"approval {record.id} is being run by another process (pid {holder}); it is "
                    f"not run here, and its outcome will be in `agentrt approvals show {record.id}`"
                ),
            ),
            approval_id=record.id,
        )
    if stored is None:
        if record.status is ApprovalStatus.APPROVED:  # the other claimant gave it back unrun
            return CallOutcome(
                request,
                CallStatus.SANDBOX_ERROR,
                arguments=record.effective_arguments,
                error=ErrorInfo(
                    type="not_run",
                    message=(
                        f"approval {record.id} was claimed by another process, which gave it "
                        f"back without running it; resume again to run it"
                    ),
                ),
                approval_id=record.id,
            )
        how = (
            "was abandoned by an operator"
            if record.status is ApprovalStatus.ABANDONED
            else "was claimed by a process that stopped before recording an outcome"
        )
        return CallOutcome(
            request,
            CallStatus.SANDBOX_ERROR,
            arguments=record.effective_arguments,
            error=ErrorInfo(
                type="interrupted",
                message=(
                    f"approval {record.id} {how}: it may have run, so it is not run again; "
                    f"an operator must check it (agentrt approvals show {record.id})"
                ),
            ),
            approval_id=record.id,
        )
    error = stored.get("error")
    return CallOutcome(
        request,
        CallStatus(stored.get("status", CallStatus.SANDBOX_ERROR.value)),
        arguments=record.effective_arguments,
        result=stored.get("result"),
        error=ErrorInfo(type=error.get("type", "error"), message=error.get("message", ""))
        if isinstance(error, dict)
        else None,
        approval_id=record.id,
    )
