"""The values of the approval flow: statuses, records, errors and the re-check hook."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from typing import Any

from runtime.calls import CallContext
from runtime.policy.decision import PolicyDecision


class ApprovalStatus(enum.StrEnum):
    """Where an approval stands."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    EXECUTING = "executing"
    EXECUTED = "executed"
    ABANDONED = "abandoned"


class ApprovalError(Exception):
    """An approval cannot make the requested move; `status` says where it is."""

    def __init__(self, message: str, status: ApprovalStatus | None = None) -> None:
        super().__init__(message)
        self.status = status


class ApprovalNotFound(ApprovalError, LookupError):
    """No approval has this id (or the prefix is ambiguous)."""


class ApprovalExpired(ApprovalError):
    """The approval timed out before a human decided: the call is denied."""


class AlreadyClaimed(ApprovalError):
    """The call was already claimed for execution; do not run it again.

    Attributes:
        record: The approval as stored, with `outcome` once it is recorded.
        running_elsewhere: Another live process holds the claim right now
            (it may not have recorded `executing` yet).
    """

    def __init__(self, record: ApprovalRecord, *, running_elsewhere: bool = False) -> None:
        where = "being run by another process" if running_elsewhere else f"already {record.status}"
        super().__init__(f"approval {record.id} is {where}; it will not run twice", record.status)
        self.record = record
        self.running_elsewhere = running_elsewhere


class ApprovalRecheckFailed(ApprovalError):
    """Edited (or re-checked) arguments were not allowed by the policy.

    Attributes:
        decision: The decision that refused them; the approval stays pending.
    """

    def __init__(self, decision: PolicyDecision) -> None:
        super().__init__(f"the policy refuses these arguments: {decision.reason}")
        self.decision = decision


@dataclasses.dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """One stored approval. `arguments` are as validated when it was requested."""

    id: str
    run_id: str
    call_id: str
    tool: str
    arguments: dict[str, Any]
    edited_arguments: dict[str, Any] | None
    context: dict[str, Any]
    decision: dict[str, Any]
    status: ApprovalStatus
    created_at: float
    expires_at: float
    decided_at: float | None = None
    decided_by: str | None = None
    note: str | None = None
    recheck_decision: dict[str, Any] | None = None
    claimed_at: float | None = None
    finished_at: float | None = None
    outcome: Any = None

    @property
    def effective_arguments(self) -> dict[str, Any]:
        """The arguments to run with: the edited ones when a human edited them."""
        return self.edited_arguments if self.edited_arguments is not None else self.arguments

    @property
    def arguments_edited(self) -> bool:
        """True when a human changed the arguments (re-validate before running)."""
        return self.edited_arguments is not None

    def call_context(self) -> CallContext:
        """Rebuild the caller's context, for re-checking the policy."""
        return CallContext(**{**self.context, "extra": dict(self.context.get("extra") or {})})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for `agentrt approvals show`)."""
        out = dataclasses.asdict(self)
        out["status"] = str(self.status)
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class PendingCall:
    """One call of a turn that needs approval, as `create_batch` takes it."""

    call_id: str
    tool: str
    arguments: Mapping[str, Any]
    decision: PolicyDecision
    context: CallContext = dataclasses.field(default_factory=CallContext)


@dataclasses.dataclass(frozen=True, slots=True)
class ExecutionClaim:
    """Permission to run an approved call once; pass `token` to `mark_executed`."""

    record: ApprovalRecord
    token: str


#: Re-validates and re-decides arguments at approval time. Receives the record
#: and the arguments that would run; raises to refuse (e.g. schema errors) or
#: returns the policy decision, which must be `allow`. `approval_recheck` builds one.
Recheck = Callable[[ApprovalRecord, Mapping[str, Any]], PolicyDecision]
