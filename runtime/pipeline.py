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
from runtime.audit import events
from runtime.audit.events import Event, Record
from runtime.audit.sink import AuditSink, AuditWriteError, NullAuditSink, wire_policy_redaction
from runtime.calls import CallContext, CallStatus, ErrorInfo, ExecutionResult, ToolCallRequest
from runtime.policy.decision import NoPolicy, PolicyDecision, PolicyEngine
from runtime.sandbox.executor import ToolExecutor
from runtime.tools import ToolRegistry

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
        policy: Decides allow/deny/approval. Without one every call is denied
            (`no-policy`): pass `runtime.policy.allow_all()` to run every valid call.
        audit: Receives one record per step; a write failure stops execution.
            A sink that redacts (`HashChainSink`) is given the policy's
            `audit.redact` paths here.
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
        self.policy: PolicyEngine = policy if policy is not None else NoPolicy()
        self.audit: AuditSink = audit or NullAuditSink()
        wire_policy_redaction(self.audit, self.policy)
        self.agent_name = agent_name
        self.model_name = model_name
        self.observer = observer

    def call_fields(self, request: ToolCallRequest, context: CallContext) -> dict[str, Any]:
        """The identity fields every audit record of this call starts with."""
        fields = events.call_fields(
            request.name,
            request.id,
            context,
            agent_name=self.agent_name,
            model_name=self.model_name,
        )
        tool = self.registry.get(request.name)
        if tool is not None:
            fields.update(tool.audit_fields())
        return fields

    def record(self, record: Record) -> None:
        """Write one audit record (raises `AuditWriteError` when the log refuses it)."""
        events.write(self.audit, record)

    def _notify(self, stage: str, request: ToolCallRequest, info: Mapping[str, Any]) -> None:
        if self.observer is not None:
            self.observer(stage, request, info)

    async def process(self, request: ToolCallRequest, context: CallContext) -> CallOutcome:
        """Take one proposed call to its single final status. Never raises for bad input."""
        started = time.perf_counter()
        base = self.call_fields(request, context)
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
        self.record(events.tool_proposed(base, raw))
        self._notify("proposed", request, {})
        checked = self.gate.check(request)
        if isinstance(checked, Rejection):
            return self.rejected(checked, base)
        self.record(events.tool_validated(base, checked.arguments))
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
        base = self.call_fields(request, context)
        raw = request.raw if request.raw is not None else request.arguments
        self.record(events.tool_proposed(base, raw))
        return self.rejected(Rejection(request, status, error), base)

    def rejected(self, rejection: Rejection, base: dict[str, Any]) -> CallOutcome:
        """End a call the gate refused: its one `tool.rejected` record, then the outcome."""
        self.record(
            events.tool_rejected(base, rejection.status.value, rejection.error, rejection.arguments)
        )
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
        self.record(events.policy_decided(base, decision))
        self._notify("decided", request, {"decision": decision})
        if decision.decision == "deny":
            return self.denied(request, arguments, decision, base)
        if decision.decision == "require_approval":
            self.record(events.approval_requested(base))
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

    def denied(
        self,
        request: ToolCallRequest,
        arguments: dict[str, Any],
        decision: PolicyDecision,
        base: dict[str, Any],
    ) -> CallOutcome:
        """End a call the policy denied: its one `tool.denied` record, then the outcome."""
        error = ErrorInfo(type="denied", message=decision.reason or "denied by policy")
        self.record(events.tool_denied(base, decision.rule_ids, error))
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
        base = base if base is not None else self.call_fields(request, context)
        self.record(events.execution_started(base, self.executor.name))
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
        audit_error = None
        try:
            self.record(events.execution_finished(base, result, self.executor.name))
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
