"""Values that travel through the stages of one tool call.

Every stage (parse → validate → decide → approve → execute → record) takes and
returns these plain objects, so the agent loop, `agentrt call` and the
benchmarks share one vocabulary. Nothing here imports a heavy dependency.
"""

from __future__ import annotations

import dataclasses
import enum
import traceback
from typing import Any


class CallStatus(enum.StrEnum):
    """How one proposed tool call ended. Exactly one per call."""

    OK = "ok"
    UNKNOWN_TOOL = "unknown_tool"
    INVALID_ARGUMENTS = "invalid_arguments"
    DENIED = "denied"
    PENDING_APPROVAL = "pending_approval"
    TOOL_ERROR = "tool_error"
    TIMEOUT = "timeout"
    RESOURCE_EXCEEDED = "resource_exceeded"
    SANDBOX_ERROR = "sandbox_error"
    AUDIT_ERROR = "audit_error"

    @property
    def was_rejected(self) -> bool:
        """True when the call never reached a tool."""
        return self in _REJECTED


_REJECTED = frozenset(
    {
        CallStatus.UNKNOWN_TOOL,
        CallStatus.INVALID_ARGUMENTS,
        CallStatus.DENIED,
        CallStatus.PENDING_APPROVAL,
    }
)


@dataclasses.dataclass(frozen=True, slots=True)
class ToolCallRequest:
    """A call as the model proposed it: a name and a raw JSON `arguments` string.

    `raw` keeps the source text when the call was recovered from a
    `<tool_call>` block rather than the server's `tool_calls` field.
    """

    id: str
    name: str
    arguments: str
    raw: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class CallContext:
    """Who is calling and on behalf of what: read by policy, sandbox and audit."""

    tenant: str | None = None
    agent: str | None = None
    conversation_id: str | None = None
    run_id: str | None = None
    principal: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Capabilities the policy decision granted this call (e.g. "network"); set by
    # the pipeline after the policy stage, read by the sandbox.
    grants: frozenset[str] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        """JSON form for persisting (approvals, paused runs); grants are never persisted."""
        return {
            "tenant": self.tenant,
            "agent": self.agent,
            "conversation_id": self.conversation_id,
            "run_id": self.run_id,
            "principal": self.principal,
            "extra": dict(self.extra),
        }

    def as_policy_context(self) -> dict[str, Any]:
        """Flatten into the `context.<name>` namespace policy conditions read."""
        values: dict[str, Any] = dict(self.extra)
        values.update(
            tenant=self.tenant,
            agent=self.agent,
            conversation_id=self.conversation_id,
            principal=self.principal,
        )
        return values


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A failure the caller (and the model) can act on.

    Attributes:
        type: Machine-readable kind, e.g. `ZeroDivisionError`, `schema`, `oom`.
        message: One human sentence saying what went wrong and, where possible,
            what to do instead.
        details: Extra lines (per-path schema errors, a truncated traceback).
    """

    type: str
    message: str
    details: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.details:
            out["details"] = list(self.details)
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class ExecutionResult:
    """What an executor reports for one call it ran (or failed to run).

    `status` is one of OK, TOOL_ERROR, TIMEOUT, RESOURCE_EXCEEDED,
    SANDBOX_ERROR. `sandbox` carries executor facts for the audit log
    (container id, mode, exit code); `stdout`/`stderr` are the tool's own
    prints, already capped.
    """

    status: CallStatus
    result: Any = None
    error: ErrorInfo | None = None
    stdout: str = ""
    stderr: str = ""
    duration_ms: float = 0.0
    sandbox: dict[str, Any] = dataclasses.field(default_factory=dict)


TRACEBACK_LIMIT = 4000


def error_from_exception(exc: BaseException) -> ErrorInfo:
    """Describe a tool's exception for the caller and the model (traceback truncated)."""
    text = "".join(traceback.format_exception(exc))
    if len(text) > TRACEBACK_LIMIT:
        text = "…" + text[-TRACEBACK_LIMIT:]
    return ErrorInfo(
        type=type(exc).__name__, message=str(exc) or type(exc).__name__, details=(text,)
    )
