"""One tool call through every stage: parse → validate → decide → approve → execute.

`ToolCallPipeline.process` is the single path a proposed call takes, whether
it comes from the agent loop or from `agentrt call`. Each stage is a small
object with a narrow interface (`ArgumentGate`, a `PolicyEngine`, a
`ToolExecutor`, an `AuditSink`); this module only composes them, writes one
audit record per step, and turns every outcome into a `CallOutcome` value.
Every call that can be audited ends in exactly one record carrying its status
(see `runtime.audit.events`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from runtime.arguments import ArgumentGate, ArgumentLimits, ArgumentsAccepted, Rejection
from runtime.audit.events import Event, Field
from runtime.audit.sink import AuditSink, AuditWriteError, NullAuditSink
from runtime.calls import CallContext, CallStatus, ErrorInfo, ExecutionResult, ToolCallRequest
from runtime.policy.approvals import AlreadyClaimed, ApprovalRecord, ApprovalStatus, ApprovalStore
from runtime.policy.decision import AllowAllPolicy, PolicyDecision, PolicyEngine
from runtime.sandbox.executor import ToolExecutor
from runtime.tools import ToolRegistry

RAW_ARGUMENTS_CAP = 4096
# What an executor reports in `ExecutionResult.sandbox`, and where it is recorded.
_SANDBOX_FIELDS = (
    ("container_id", Field.SANDBOX_CONTAINER_ID),
    ("exit_code", Field.EXIT_CODE),
    ("image", Field.SANDBOX_IMAGE),
)
# How much longer than a claimant's own backstop a second resume waits for its outcome.
CLAIM_WAIT_MARGIN_S = 10.0
# Host-side backstop on top of each executor's own timeout enforcement: the
# tool's timeout, plus the executor's declared wait for a sandbox
# (`sandbox_wait_s`, see `ToolExecutor`), plus this grace for killing and reporting.
TIMEOUT_GRACE_S = 5.0

Observer = Callable[[str, "ToolCallRequest", Mapping[str, Any]], None]


@dataclasses.dataclass(frozen=True, slots=True)
class CallOutcome:
    """How one proposed call ended, with everything the caller and model need.

    Attributes:
        request: The call as proposed.
        status: Exactly one `CallStatus`.
        arguments: Parsed arguments, when they parsed.
        result: The tool's JSON result when `status` is `ok`.
        error: What went wrong otherwise.
        decision: The policy decision, when the policy stage ran.
        execution: The executor's report, when the call ran.
        duration_ms: Time spent in the pipeline for this call.
        approval_id: The approval this call waited for, if any.
        audit_error: Set when the call ran but its final audit record could
            not be written (e.g. disk full while the tool ran): `status` and
            `result` still say what happened, and the call is *not fully
            audited*. Printed as `audited: false` with this sentence.
    """

    request: ToolCallRequest
    status: CallStatus
    arguments: dict[str, Any] | None = None
    result: Any = None
    error: ErrorInfo | None = None
    decision: PolicyDecision | None = None
    execution: ExecutionResult | None = None
    duration_ms: float = 0.0
    approval_id: str | None = None
    audit_error: str | None = None

    @property
    def tool(self) -> str:
        return self.request.name

    @property
    def audited(self) -> bool:
        """False when the call's final record is missing from the audit log."""
        return self.audit_error is None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape printed by `agentrt call` and `agentrt run --json`."""
        out: dict[str, Any] = {
            "id": self.request.id,
            "tool": self.request.name,
            "status": self.status.value,
            "arguments": self.arguments if self.arguments is not None else self.request.arguments,
        }
        if self.status is CallStatus.OK:
            out["result"] = self.result
        if self.error is not None:
            out["error"] = self.error.to_dict()
        if self.decision is not None:
            out["decision"] = self.decision.to_dict()
        if self.approval_id is not None:
            out["approval_id"] = self.approval_id
        if self.execution is not None:
            out["sandbox"] = dict(self.execution.sandbox)
            if self.execution.stdout:
                out["stdout"] = self.execution.stdout
            if self.execution.stderr:
                out["stderr"] = self.execution.stderr
        if self.audit_error is not None:
            out["audited"] = False
            out["audit_error"] = self.audit_error
        out["duration_ms"] = round(self.duration_ms, 3)
        return out

    def tool_message_content(self) -> str:
        """What the model reads back in the `tool` message for this call."""
        if self.status is CallStatus.OK:
            return json.dumps(self.result, ensure_ascii=False, default=str)
        error = self.error or ErrorInfo(type=self.status.value, message=self.status.value)
        body: dict[str, Any] = {"status": self.status.value, "error": error.message}
        if self.status is CallStatus.INVALID_ARGUMENTS:
            body["hint"] = "fix the arguments to match the tool's schema and call again"
        elif self.status is CallStatus.UNKNOWN_TOOL:
            body["hint"] = "call one of the listed tools, or answer without a tool"
        elif self.status is CallStatus.DENIED:
            body["hint"] = "this call is not permitted; do not retry it unchanged"
        return json.dumps({"error": body}, ensure_ascii=False)


class ToolCallPipeline:
    """Runs proposed calls through gate, policy and executor, auditing every step.

    Args:
        registry: The tools that exist.
        executor: Where approved calls run.
        policy: Decides allow/deny/approval; default allows whatever validates.
        audit: Receives one record per step; a write failure stops execution.
        limits: Size and depth caps for argument JSON.
        agent_name: Recorded as `gen_ai.agent.name`.
        model_name: Recorded as `gen_ai.request.model`.
        observer: Called with (stage, request, info) at each step, for live UIs.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        executor: ToolExecutor,
        *,
        policy: PolicyEngine | None = None,
        audit: AuditSink | None = None,
        limits: ArgumentLimits = ArgumentLimits(),
        agent_name: str | None = None,
        model_name: str | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.registry = registry
        self.gate = ArgumentGate(registry, limits)
        self.executor = executor
        self.policy: PolicyEngine = policy or AllowAllPolicy()
        self.audit: AuditSink = audit or NullAuditSink()
        self.agent_name = agent_name
        self.model_name = model_name
        self.observer = observer

    def _base_fields(self, request: ToolCallRequest, context: CallContext) -> dict[str, Any]:
        fields: dict[str, Any] = {
            Field.OPERATION_NAME: "execute_tool",
            Field.TOOL_NAME: request.name,
            Field.TOOL_CALL_ID: request.id,
        }
        optional = {
            Field.AGENT_NAME: context.agent or self.agent_name,
            Field.CONVERSATION_ID: context.conversation_id,
            Field.REQUEST_MODEL: self.model_name,
            Field.TENANT: context.tenant,
            Field.PRINCIPAL: context.principal,
            Field.RUN_ID: context.run_id,
        }
        fields.update({key: value for key, value in optional.items() if value is not None})
        return fields

    def _notify(self, stage: str, request: ToolCallRequest, info: Mapping[str, Any]) -> None:
        if self.observer is not None:
            self.observer(stage, request, info)

    async def process(self, request: ToolCallRequest, context: CallContext) -> CallOutcome:
        """Take one proposed call to its single final status. Never raises for bad input."""
        started = time.perf_counter()
        base = self._base_fields(request, context)
        try:
            outcome = await self._process(request, context, base)
        except AuditWriteError as exc:
            outcome = CallOutcome(
                request,
                CallStatus.AUDIT_ERROR,
                error=ErrorInfo(
                    type="audit_unavailable",
                    message=f"the audit log cannot be written, so no tool runs: {exc}",
                ),
            )
        outcome = dataclasses.replace(outcome, duration_ms=(time.perf_counter() - started) * 1000)
        self._notify("finished", request, {"outcome": outcome})
        return outcome

    async def _process(
        self, request: ToolCallRequest, context: CallContext, base: dict[str, Any]
    ) -> CallOutcome:
        raw = request.raw if request.raw is not None else request.arguments
        self.audit.write(
            Event.TOOL_PROPOSED, {**base, Field.ARGUMENTS_RAW: raw[:RAW_ARGUMENTS_CAP]}
        )
        self._notify("proposed", request, {})
        checked = self.gate.check(request)
        if isinstance(checked, Rejection):
            return self._rejected(checked, base)
        self.audit.write(Event.TOOL_VALIDATED, {**base, Field.ARGUMENTS: checked.arguments})
        self._notify("validated", request, {"arguments": checked.arguments})
        return await self._decide_and_run(checked, context, base)

    def too_many_calls(
        self, request: ToolCallRequest, context: CallContext, limit: int
    ) -> CallOutcome:
        """Refuse a call beyond the per-turn limit without running anything."""
        error = ErrorInfo(
            type="too_many_calls",
            message=f"at most {limit} tool calls are run per turn; this one was not run",
        )
        return self.reject(request, context, CallStatus.DENIED, error)

    def reject(
        self, request: ToolCallRequest, context: CallContext, status: CallStatus, error: ErrorInfo
    ) -> CallOutcome:
        """Refuse a call before the gate: audited as proposed and rejected, nothing run."""
        base = self._base_fields(request, context)
        raw = request.raw if request.raw is not None else request.arguments
        self.audit.write(
            Event.TOOL_PROPOSED, {**base, Field.ARGUMENTS_RAW: raw[:RAW_ARGUMENTS_CAP]}
        )
        return self._rejected(Rejection(request, status, error), base)

    def _rejected(self, rejection: Rejection, base: dict[str, Any]) -> CallOutcome:
        fields = {
            **base,
            Field.STATUS: rejection.status.value,
            Field.ERROR_TYPE: rejection.error.type,
            Field.ERROR_MESSAGE: rejection.error.message,
        }
        if rejection.arguments is not None:
            fields[Field.ARGUMENTS] = rejection.arguments
        self.audit.write(Event.TOOL_REJECTED, fields)
        self._notify(
            "rejected", rejection.request, {"status": rejection.status, "error": rejection.error}
        )
        return CallOutcome(
            rejection.request,
            rejection.status,
            arguments=rejection.arguments,
            error=rejection.error,
        )

    async def _decide_and_run(
        self, call: ArgumentsAccepted, context: CallContext, base: dict[str, Any]
    ) -> CallOutcome:
        request, tool, arguments = call.request, call.tool, call.arguments
        try:
            decision = self.policy.decide(tool.name, arguments, context)
        except Exception as exc:  # a broken policy denies; it never allows by accident
            decision = PolicyDecision(
                decision="deny",
                rule_ids=("policy-error",),
                reason=f"the policy could not be evaluated ({type(exc).__name__}: {exc})",
            )
        self._record_decision(decision, base)
        self._notify("decided", request, {"decision": decision})
        if decision.decision == "deny":
            return self._denied(request, arguments, decision, base)
        if decision.decision == "require_approval":
            self.audit.write(
                Event.APPROVAL_REQUESTED,
                {**base, Field.STATUS: CallStatus.PENDING_APPROVAL.value},
            )
            return CallOutcome(
                request,
                CallStatus.PENDING_APPROVAL,
                arguments=arguments,
                error=ErrorInfo(
                    type="pending_approval",
                    message=decision.reason or "this call waits for a human approval",
                ),
                decision=decision,
            )
        return await self.execute(
            call, dataclasses.replace(context, grants=frozenset(decision.grants)), base, decision
        )

    def _record_decision(
        self, decision: PolicyDecision, base: dict[str, Any], *, approved: bool = False
    ) -> None:
        fields = {
            **base,
            Field.DECISION: decision.decision,
            Field.RULE_IDS: list(decision.rule_ids),
            Field.POLICY_SHA256: decision.policy_sha256,
            Field.REASON: decision.reason,
        }
        if approved:
            fields[Field.APPROVED] = True
        self.audit.write(Event.POLICY_DECIDED, fields)

    def _denied(
        self,
        request: ToolCallRequest,
        arguments: dict[str, Any],
        decision: PolicyDecision,
        base: dict[str, Any],
    ) -> CallOutcome:
        """End a call the policy denied: its one `tool.denied` record, then the outcome."""
        error = ErrorInfo(type="denied", message=decision.reason or "denied by policy")
        self.audit.write(
            Event.TOOL_DENIED,
            {
                **base,
                Field.STATUS: CallStatus.DENIED.value,
                Field.RULE_IDS: list(decision.rule_ids),
                Field.REASON: error.message,
                Field.ERROR_TYPE: error.type,
            },
        )
        return CallOutcome(
            request, CallStatus.DENIED, arguments=arguments, error=error, decision=decision
        )

    async def execute(
        self,
        call: ArgumentsAccepted,
        context: CallContext,
        base: dict[str, Any] | None = None,
        decision: PolicyDecision | None = None,
    ) -> CallOutcome:
        """Run an accepted, allowed call in the executor and audit its start and end."""
        request, tool, arguments = call.request, call.tool, call.arguments
        base = base if base is not None else self._base_fields(request, context)
        self.audit.write(Event.EXECUTION_STARTED, {**base, Field.SANDBOX_MODE: self.executor.name})
        self._notify("started", request, {})
        started = time.perf_counter()
        waits = float(getattr(self.executor, "sandbox_wait_s", 0.0) or 0.0)
        backstop = tool.timeout_s + waits + TIMEOUT_GRACE_S
        try:
            async with asyncio.timeout(backstop):
                result = await self.executor.execute(tool, arguments, context)
        except TimeoutError:
            # The executor enforces the tool's timeout and its own waits itself;
            # reaching this means it stopped answering, so say only that.
            result = ExecutionResult(
                status=CallStatus.TIMEOUT,
                error=ErrorInfo(
                    type="executor_timeout",
                    message=(
                        f"the {self.executor.name} executor did not report on tool "
                        f"{tool.name!r} within {backstop:g} s (its timeout is "
                        f"{tool.timeout_s:g} s); the call was abandoned and may have run"
                    ),
                ),
                duration_ms=(time.perf_counter() - started) * 1000,
                sandbox={"mode": self.executor.name},
            )
        except Exception as exc:  # an executor bug must not take the run down
            result = ExecutionResult(
                status=CallStatus.SANDBOX_ERROR,
                error=ErrorInfo(type=type(exc).__name__, message=f"executor failed: {exc}"),
                duration_ms=(time.perf_counter() - started) * 1000,
            )
        fields = {
            **base,
            Field.STATUS: result.status.value,
            Field.DURATION_MS: round(result.duration_ms, 3),
            Field.SANDBOX_MODE: result.sandbox.get("mode", self.executor.name),
        }
        for key, name in _SANDBOX_FIELDS:
            if key in result.sandbox:
                fields[name] = result.sandbox[key]
        if result.status is CallStatus.OK:
            fields[Field.RESULT] = result.result
        if result.error is not None:
            fields[Field.ERROR_TYPE] = result.error.type
            fields[Field.ERROR_MESSAGE] = result.error.message
            if result.error.details:
                fields[Field.ERROR_DETAILS] = list(result.error.details)
        if result.stdout:
            fields[Field.STDOUT] = result.stdout
        if result.stderr:
            fields[Field.STDERR] = result.stderr
        audit_error = None
        try:
            self.audit.write(Event.EXECUTION_FINISHED, fields)
        except AuditWriteError as exc:
            # The tool ran: reporting "nothing ran" would invite a second payment.
            audit_error = (
                f"the call ran ({result.status.value}) but its {Event.EXECUTION_FINISHED} "
                f"record could not be written: {exc}"
            )
        return CallOutcome(
            request,
            result.status,
            arguments=arguments,
            result=result.result,
            error=result.error,
            decision=decision,
            execution=result,
            audit_error=audit_error,
        )

    async def run_approved(
        self, record: ApprovalRecord, approvals: ApprovalStore, context: CallContext
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
        started = time.perf_counter()
        try:
            outcome = await self._run_approved(record, approvals, context)
        except AuditWriteError as exc:
            request = ToolCallRequest(
                id=record.call_id,
                name=record.tool,
                arguments=json.dumps(record.effective_arguments),
            )
            outcome = CallOutcome(
                request,
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

    async def _run_approved(
        self, record: ApprovalRecord, approvals: ApprovalStore, context: CallContext
    ) -> CallOutcome:
        request = ToolCallRequest(
            id=record.call_id, name=record.tool, arguments=json.dumps(record.effective_arguments)
        )
        base = self._base_fields(request, context)
        status = ApprovalStatus(record.status)
        if status in (ApprovalStatus.REJECTED, ApprovalStatus.EXPIRED, ApprovalStatus.ABANDONED):
            expired = status is ApprovalStatus.EXPIRED
            reason = record.note or f"a human did not approve this call ({status.value})"
            error = ErrorInfo(type=f"approval_{status.value}", message=reason)
            self.audit.write(
                Event.APPROVAL_EXPIRED if expired else Event.APPROVAL_REJECTED,
                {
                    **base,
                    Field.APPROVAL_ID: record.id,
                    Field.STATUS: CallStatus.DENIED.value,
                    Field.REASON: reason,
                    Field.ERROR_TYPE: error.type,
                },
            )
            return CallOutcome(
                request,
                CallStatus.DENIED,
                arguments=record.effective_arguments,
                error=error,
                approval_id=record.id,
            )
        try:
            claim = await asyncio.to_thread(approvals.claim_for_execution, record.id)
        except AlreadyClaimed as exc:
            return await self._claimed_elsewhere(request, approvals, exc.record)
        try:
            self.audit.write(
                Event.APPROVAL_GRANTED,
                {
                    **base,
                    Field.APPROVAL_ID: record.id,
                    Field.APPROVAL_EDITED: record.arguments_edited,
                    Field.ARGUMENTS: record.effective_arguments,
                },
            )
            outcome = await self._run_claimed(request, record, context, base)
        except AuditWriteError:
            # Raised only before the tool ran (`execute` keeps a failure after it
            # in the outcome): give the claim back so the call can be resumed later.
            await asyncio.to_thread(approvals.unclaim, record.id, claim.token)
            raise
        except BaseException:  # cancelled mid-call: it may have run; an operator decides
            approvals.forget_claim(record.id)
            raise
        outcome = dataclasses.replace(outcome, approval_id=record.id)
        await asyncio.to_thread(approvals.mark_executed, record.id, claim.token, outcome.to_dict())
        return outcome

    async def _claimed_elsewhere(
        self, request: ToolCallRequest, approvals: ApprovalStore, record: ApprovalRecord
    ) -> CallOutcome:
        """Another resume claimed this call: its stored outcome, once a live claimant is done."""
        if record.outcome is None and record.status in (
            ApprovalStatus.APPROVED,
            ApprovalStatus.EXECUTING,
        ):
            tool = self.registry.get(record.tool)
            # The claimant gives up on the call by its own backstop (see `execute`).
            wait_s = CLAIM_WAIT_MARGIN_S + TIMEOUT_GRACE_S + (tool.timeout_s if tool else 60.0)
            wait_s += float(getattr(self.executor, "sandbox_wait_s", 0.0) or 0.0)
            record = await asyncio.to_thread(approvals.wait_for_claim, record.id, wait_s)
        holder = None
        if record.outcome is None:
            holder = await asyncio.to_thread(approvals.claim_holder, record.id)
        return _outcome_from_record(request, record, holder)

    async def _run_claimed(
        self,
        request: ToolCallRequest,
        record: ApprovalRecord,
        context: CallContext,
        base: dict[str, Any],
    ) -> CallOutcome:
        tool = self.registry.get(record.tool)
        if tool is None:
            return self._rejected(
                Rejection(
                    request,
                    CallStatus.UNKNOWN_TOOL,
                    ErrorInfo(
                        type="unknown_tool", message=f"tool {record.tool!r} no longer exists"
                    ),
                ),
                base,
            )
        checked = self.gate.validate(request, tool, record.effective_arguments)
        if isinstance(checked, Rejection):
            return self._rejected(checked, base)
        decision = self.policy.decide_approved(tool.name, checked.arguments, context)
        self._record_decision(decision, base, approved=True)
        if decision.decision != "allow":
            return self._denied(request, checked.arguments, decision, base)
        granted = dataclasses.replace(context, grants=frozenset(decision.grants))
        return await self.execute(checked, granted, base, decision)


def _outcome_from_record(
    request: ToolCallRequest, record: ApprovalRecord, holder: int | None = None
) -> CallOutcome:
    """The stored outcome of an approval that was already claimed.

    Without one: `running_elsewhere` while a live process (`holder`, a pid)
    still runs it, else `interrupted` (its claimant is gone, or an operator
    abandoned it).
    """
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
