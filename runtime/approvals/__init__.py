"""Human approval of tool calls, in one package.

- `records`: statuses, stored records, errors, the re-check hook's type;
- `store`: `ApprovalStore`, SQLite-backed, execute-exactly-once claims;
- `recheck`: edited arguments through the `ArgumentGate` and the policy;
- `run_state`: a paused run as the store keeps it;
- `resume`: pausing a run, and running decided calls once on resume.
"""

from __future__ import annotations

from runtime.approvals.recheck import EditedArgumentsInvalid, approval_recheck
from runtime.approvals.records import (
    AlreadyClaimed,
    ApprovalError,
    ApprovalExpired,
    ApprovalNotFound,
    ApprovalRecheckFailed,
    ApprovalRecord,
    ApprovalStatus,
    ExecutionClaim,
    PendingCall,
    Recheck,
)
from runtime.approvals.run_state import SavedRun
from runtime.approvals.store import DEFAULT_APPROVALS_DB, ApprovalStore

__all__ = [
    "DEFAULT_APPROVALS_DB",
    "AlreadyClaimed",
    "ApprovalError",
    "ApprovalExpired",
    "ApprovalNotFound",
    "ApprovalRecheckFailed",
    "ApprovalRecord",
    "ApprovalStatus",
    "ApprovalStore",
    "EditedArgumentsInvalid",
    "ExecutionClaim",
    "PendingCall",
    "Recheck",
    "SavedRun",
    "approval_recheck",
]
