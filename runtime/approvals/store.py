"""Persisted human approvals: pending calls, decisions, and execute-exactly-once claims.

A call whose policy decision is `require_approval` is stored (SQLite, WAL)
with its validated arguments, the decision, the caller's context and the
run's serialisable state; the run then stops with `pending_approval`. A human
approves (optionally with edited arguments), rejects, or lets it expire.

States::

    pending ──approve──► approved ──claim──► executing ──mark_executed──► executed
       │  └─reject──► rejected                  │
       └─(expires_at passed)──► expired         └─abandon──► abandoned

Exactly once: `claim_for_execution` is one conditional UPDATE
(`approved → executing`) committed *before* the tool runs, returning a claim
token. A second resume, in this process or another, finds `executing` or
`executed` and gets `AlreadyClaimed` carrying the record (and the outcome,
once recorded) instead of running the call again. A process that crashes
after claiming leaves the call `executing`: it is never re-run automatically,
because nobody can know whether the side effect happened. `list(status=
"executing")` shows such calls; an operator checks and then `abandon`s them
(a new call is the way to try again).

Running elsewhere vs. interrupted: the claimant also holds an exclusive
`flock` on `PATH.claims/ID.lock` from before its claim until its outcome is
recorded; the kernel drops it if the process dies. So another process that
finds a call `executing` can tell a live claimant (`claim_holder` gives its
pid; `wait_for_claim` waits for its outcome) from a dead one (the lock is
free: the call was interrupted).

Rejected and expired calls are denials: the resumed run tells the model so.
All transitions are atomic; methods are thread-safe and block briefly (call
them through `asyncio.to_thread` from async code).
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

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
from runtime.calls import CallContext
from runtime.policy.decision import PolicyDecision

__all__ = ["DEFAULT_APPROVALS_DB", "ApprovalStore"]

DEFAULT_APPROVALS_DB = Path(".agentrt/approvals.db")
DEFAULT_TIMEOUT_S = 900.0


_SCHEMA = """
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL, call_id TEXT NOT NULL, tool TEXT NOT NULL,
    arguments TEXT NOT NULL, edited_arguments TEXT, context TEXT NOT NULL,
    decision TEXT NOT NULL, status TEXT NOT NULL,
    created_at REAL NOT NULL, expires_at REAL NOT NULL,
    decided_at REAL, decided_by TEXT, note TEXT, recheck_decision TEXT,
    claim_token TEXT, claimed_at REAL, finished_at REAL, outcome TEXT,
    UNIQUE (run_id, call_id)
);
CREATE INDEX IF NOT EXISTS approvals_status ON approvals (status, expires_at);
CREATE TABLE IF NOT EXISTS run_states (
    run_id TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at REAL NOT NULL
);
"""
_JSON_COLUMNS = ("arguments", "edited_arguments", "context", "decision", "recheck_decision")


def _dumps(value: Any) -> str:
    # allow_nan=False: a NaN must never be stored and later re-read as a number.
    return json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))


class ApprovalStore:
    """Approvals in a SQLite file, shared safely by threads and processes.

    Args:
        path: Database file (default `.agentrt/approvals.db`); folder created.
        clock: Wall-clock seconds; inject a fake one in tests.
        default_timeout_s: Used when a decision carries no approval timeout.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_APPROVALS_DB,
        *,
        clock: Callable[[], float] = time.time,
        default_timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._default_timeout_s = default_timeout_s
        self._lock = threading.Lock()
        self._claims_dir = self.path.with_name(self.path.name + ".claims")
        self._claim_fds: dict[str, int] = {}  # approval id -> its claim lock, held here
        self._conn = sqlite3.connect(
            self.path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        self._conn.row_factory = sqlite3.Row
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")  # approvals must survive power loss
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database connection (and drop the claim locks this store holds)."""
        with self._lock:
            for approval_id in list(self._claim_fds):
                self._drop_claim_lock(approval_id, unlink=False)
            self._conn.close()

    # ------------------------------------------------------------------ creating

    def create(
        self,
        *,
        call_id: str,
        tool: str,
        arguments: Mapping[str, Any],
        decision: PolicyDecision,
        context: CallContext | None = None,
        run_id: str | None = None,
        run_state: Any = None,
    ) -> ApprovalRecord:
        """Persist one pending call (see `create_batch`)."""
        ctx = context or CallContext()
        call = PendingCall(call_id, tool, arguments, decision, ctx)
        return self.create_batch([call], run_id=run_id or ctx.run_id, run_state=run_state)[0]

    def create_batch(
        self, calls: Sequence[PendingCall], *, run_id: str | None, run_state: Any = None
    ) -> list[ApprovalRecord]:
        """Persist every pending call of a turn, and the run state, in one transaction.

        Idempotent per (run_id, call_id): saving the same call again returns
        the stored record unchanged, so a loop that crashed after saving can
        safely save again.

        Raises:
            ValueError: Arguments, context or state are not JSON (NaN included).
        """
        run = run_id or ""
        now = self._clock()
        rows = []
        for call in calls:
            timeout = call.decision.approval_timeout_s or self._default_timeout_s
            rows.append(
                (
                    uuid.uuid4().hex,
                    run,
                    call.call_id,
                    call.tool,
                    _dumps(dict(call.arguments)),
                    _dumps(call.context.to_dict()),
                    _dumps(call.decision.to_dict()),
                    ApprovalStatus.PENDING.value,
                    now,
                    now + timeout,
                )
            )
        state = _dumps(run_state) if run_state is not None else None
        with self._lock, self._transaction():
            self._conn.executemany(
                "INSERT OR IGNORE INTO approvals (id, run_id, call_id, tool, arguments, context,"
                " decision, status, created_at, expires_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            if state is not None and run:
                self._save_state(run, state, now)
            found = [
                self._conn.execute(
                    "SELECT * FROM approvals WHERE run_id = ? AND call_id = ?", (run, c.call_id)
                ).fetchone()
                for c in calls
            ]
        by_call = {row["call_id"]: _record(row) for row in found}
        return [by_call[c.call_id] for c in calls]

    def save_run_state(self, run_id: str, state: Any) -> None:
        """Store (replace) the opaque, JSON-serialisable state of a paused run."""
        text = _dumps(state)
        with self._lock, self._transaction():
            self._save_state(run_id, text, self._clock())

    def _save_state(self, run_id: str, text: str, now: float) -> None:
        self._conn.execute(
            "INSERT INTO run_states (run_id, state, updated_at) VALUES (?,?,?) "
            "ON CONFLICT (run_id) DO UPDATE SET state = excluded.state, "
            "updated_at = excluded.updated_at",
            (run_id, text, now),
        )

    def load_run_state(self, run_id: str) -> Any:
        """The state saved for a run, or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT state FROM run_states WHERE run_id = ?", (run_id,)
            ).fetchone()
        return json.loads(row["state"]) if row is not None else None

    # ------------------------------------------------------------------ reading

    def get(self, approval_id: str) -> ApprovalRecord:
        """One approval by id or unique id prefix (at least 6 characters).

        Raises:
            ApprovalNotFound: No such approval, or the prefix is ambiguous.
        """
        self.expire_due()
        with self._lock:
            return self._get(approval_id)

    def _get(self, approval_id: str) -> ApprovalRecord:
        row = self._conn.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone()
        if row is None and len(approval_id) >= 6 and approval_id.isalnum():
            rows = self._conn.execute(
                "SELECT * FROM approvals WHERE id LIKE ? LIMIT 2", (approval_id + "%",)
            ).fetchall()
            if len(rows) > 1:
                raise ApprovalNotFound(f"approval id prefix {approval_id!r} is ambiguous")
            row = rows[0] if rows else None
        if row is None:
            raise ApprovalNotFound(f"no approval {approval_id!r}")
        return _record(row)

    def list(
        self, *, status: ApprovalStatus | str | None = None, run_id: str | None = None
    ) -> list[ApprovalRecord]:
        """Approvals, oldest first, optionally filtered by status and run."""
        self.expire_due()
        query, params = "SELECT * FROM approvals WHERE 1=1", []
        if status is not None:
            query += " AND status = ?"
            params.append(str(ApprovalStatus(status)))
        if run_id is not None:
            query += " AND run_id = ?"
            params.append(run_id)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY created_at, id", params).fetchall()
        return [_record(row) for row in rows]

    def run_is_resolved(self, run_id: str) -> bool:
        """True when no call of the run is still pending (the run may resume)."""
        return not self.list(status=ApprovalStatus.PENDING, run_id=run_id)

    def expire_due(self) -> builtins.list[ApprovalRecord]:
        """Mark pending approvals past their deadline as expired (denied)."""
        now = self._clock()
        with self._lock, self._transaction():
            rows = self._conn.execute(
                "UPDATE approvals SET status = 'expired', decided_at = ? "
                "WHERE status = 'pending' AND expires_at <= ? RETURNING *",
                (now, now),
            ).fetchall()
        return [_record(row) for row in rows]

    # ------------------------------------------------------------------ deciding

    def approve(
        self,
        approval_id: str,
        *,
        by: str | None = None,
        note: str | None = None,
        arguments: Mapping[str, Any] | None = None,
        recheck: Recheck | None = None,
    ) -> ApprovalRecord:
        """Approve a pending call, optionally with edited arguments.

        Args:
            approval_id: The approval (or a unique prefix).
            by: Who approved, for the audit log.
            note: Free text.
            arguments: Edited arguments to run instead of the stored ones.
            recheck: Re-validates and re-decides the arguments that will run;
                the approval stays pending if it raises or does not allow.
                Pass one whenever `arguments` is given (the resume path must
                validate edited arguments again in any case).

        Raises:
            ApprovalNotFound, ApprovalExpired, ApprovalError: Not pending.
            ApprovalRecheckFailed: The policy refused the arguments.
        """
        record = self.get(approval_id)
        self._require(record, ApprovalStatus.PENDING, "approve")
        effective = dict(arguments) if arguments is not None else record.arguments
        recheck_text = None
        if recheck is not None:
            decision = recheck(record, effective)
            if decision.decision != "allow":
                raise ApprovalRecheckFailed(decision)
            recheck_text = _dumps(decision.to_dict())
        edited = _dumps(effective) if arguments is not None else None
        return self._transition(
            record,
            "status = 'approved', decided_at = :now, decided_by = :by, note = :note, "
            "edited_arguments = :edited, recheck_decision = :recheck",
            {"by": by, "note": note, "edited": edited, "recheck": recheck_text},
            action="approve",
        )

    def reject(
        self, approval_id: str, *, by: str | None = None, reason: str | None = None
    ) -> ApprovalRecord:
        """Reject a pending call: it is denied and never runs.

        Raises:
            ApprovalNotFound, ApprovalExpired, ApprovalError: Not pending.
        """
        record = self.get(approval_id)
        self._require(record, ApprovalStatus.PENDING, "reject")
        return self._transition(
            record,
            "status = 'rejected', decided_at = :now, decided_by = :by, note = :note",
            {"by": by, "note": reason},
            action="reject",
        )

    def claim_for_execution(self, approval_id: str) -> ExecutionClaim:
        """Take the one right to run an approved call (`approved → executing`).

        Commit happens before this returns, so call it before running the tool.

        Raises:
            AlreadyClaimed: It was claimed before (running, ran, or abandoned).
            ApprovalExpired: It timed out before a decision.
            ApprovalError: It is still pending, or was rejected.
        """
        record = self.get(approval_id)
        if record.status in (
            ApprovalStatus.EXECUTING,
            ApprovalStatus.EXECUTED,
            ApprovalStatus.ABANDONED,
        ):
            raise AlreadyClaimed(record)
        self._require(record, ApprovalStatus.APPROVED, "execute")
        # The lock first: whoever holds it is claiming or running this call.
        if not self._take_claim_lock(record.id):
            raise AlreadyClaimed(self.get(record.id), running_elsewhere=True)
        token = uuid.uuid4().hex
        now = self._clock()
        try:
            with self._lock, self._transaction():
                row = self._conn.execute(
                    "UPDATE approvals SET status = 'executing', claim_token = ?, claimed_at = ? "
                    "WHERE id = ? AND status = 'approved' RETURNING *",
                    (token, now, record.id),
                ).fetchone()
                current = (
                    row
                    or self._conn.execute(
                        "SELECT * FROM approvals WHERE id = ?", (record.id,)
                    ).fetchone()
                )
        except BaseException:
            self._release_claim_lock(record.id, unlink=False)
            raise
        if row is None:  # another resume won the race (and has finished)
            self._release_claim_lock(record.id, unlink=False)
            raise AlreadyClaimed(_record(current))
        return ExecutionClaim(_record(row), token)

    def unclaim(self, approval_id: str, token: str) -> ApprovalRecord:
        """Give back a claim whose call never started (`executing → approved`).

        For a failure before the tool was handed anything, e.g. the audit log
        refusing the `approval.granted` record: the call can be resumed later.

        Raises:
            ApprovalError: The token is not the claim's, or it is not executing.
        """
        with self._lock, self._transaction():
            row = self._conn.execute(
                "UPDATE approvals SET status = 'approved', claim_token = NULL, claimed_at = NULL "
                "WHERE id = ? AND status = 'executing' AND claim_token = ? RETURNING *",
                (approval_id, token),
            ).fetchone()
        self._release_claim_lock(approval_id, unlink=False)
        if row is None:
            raise ApprovalError(f"approval {approval_id} is not executing under this claim")
        return _record(row)

    def forget_claim(self, approval_id: str) -> None:
        """Stop holding the claim lock without recording an outcome (the run was cancelled).

        The call stays `executing`: it may have run, so only an operator may
        `abandon` it; other processes now see it as interrupted.
        """
        self._release_claim_lock(approval_id, unlink=False)

    def claim_holder(self, approval_id: str) -> int | None:
        """The pid of the live process holding the call's claim, or None."""
        try:
            fd = os.open(self._claim_lock_path(approval_id), os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                return int(text) if text.isdigit() else 0
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def wait_for_claim(self, approval_id: str, timeout_s: float) -> ApprovalRecord:
        """Wait (up to `timeout_s`) until no live process holds the claim; return the record.

        When the claimant finishes, the record carries its outcome; when it
        died, the record is still `executing` and `claim_holder` is None.
        """
        try:
            fd = os.open(self._claim_lock_path(approval_id), os.O_RDONLY)
        except FileNotFoundError:
            return self.get(approval_id)
        released = threading.Event()

        def block() -> None:  # a blocking flock returns when the holder lets go or dies
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
                released.set()

        # A daemon thread: a claimant that never lets go must not keep this process alive.
        threading.Thread(target=block, name=f"approval-wait-{approval_id}", daemon=True).start()
        released.wait(timeout_s)
        return self.get(approval_id)

    def mark_executed(self, approval_id: str, token: str, outcome: Any) -> ApprovalRecord:
        """Record what the claimed call returned (any JSON), ending its life.

        Raises:
            ApprovalError: The token is not the claim's, or it is not executing.
        """
        now = self._clock()
        with self._lock, self._transaction():
            row = self._conn.execute(
                "UPDATE approvals SET status = 'executed', finished_at = ?, outcome = ? "
                "WHERE id = ? AND status = 'executing' AND claim_token = ? RETURNING *",
                (now, _dumps(outcome), approval_id, token),
            ).fetchone()
        if row is None:
            raise ApprovalError(f"approval {approval_id} is not executing under this claim")
        self._release_claim_lock(approval_id, unlink=True)  # after the commit: waiters read it
        return _record(row)

    def abandon(
        self, approval_id: str, *, by: str | None = None, reason: str | None = None
    ) -> ApprovalRecord:
        """Close a call that crashed mid-execution (or a pending one) without running it.

        Raises:
            ApprovalError: It already executed or reached another final state.
        """
        record = self.get(approval_id)
        if record.status not in (
            ApprovalStatus.EXECUTING,
            ApprovalStatus.PENDING,
            ApprovalStatus.APPROVED,
        ):
            raise ApprovalError(f"approval {record.id} is {record.status}", record.status)
        now = self._clock()
        with self._lock, self._transaction():
            row = self._conn.execute(
                "UPDATE approvals SET status = 'abandoned', finished_at = ?, decided_by = "
                "COALESCE(decided_by, ?), note = ? WHERE id = ? AND status = ? RETURNING *",
                (now, by, reason, record.id, record.status.value),
            ).fetchone()
        if row is None:
            raise ApprovalError(f"approval {record.id} changed state; try again")
        return _record(row)

    # ------------------------------------------------------------------ internals

    def _claim_lock_path(self, approval_id: str) -> Path:
        return self._claims_dir / f"{approval_id}.lock"

    def _take_claim_lock(self, approval_id: str) -> bool:
        self._claims_dir.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(self._claim_lock_path(approval_id), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        with self._lock:
            self._claim_fds[approval_id] = fd
        return True

    def _release_claim_lock(self, approval_id: str, *, unlink: bool) -> None:
        with self._lock:
            self._drop_claim_lock(approval_id, unlink=unlink)

    def _drop_claim_lock(self, approval_id: str, *, unlink: bool) -> None:
        """Caller holds `_lock`."""
        fd = self._claim_fds.pop(approval_id, None)
        if fd is None:
            return
        if unlink:  # still locked: nobody can take a lock on it between unlink and close
            with contextlib.suppress(OSError):
                self._claim_lock_path(approval_id).unlink()
        os.close(fd)

    def _require(self, record: ApprovalRecord, status: ApprovalStatus, action: str) -> None:
        if record.status == status:
            return
        if record.status == ApprovalStatus.EXPIRED:
            raise ApprovalExpired(
                f"approval {record.id} expired before a decision; the call is denied",
                record.status,
            )
        raise ApprovalError(
            f"cannot {action} approval {record.id}: it is {record.status}", record.status
        )

    def _transition(
        self, record: ApprovalRecord, assignments: str, values: dict[str, Any], *, action: str
    ) -> ApprovalRecord:
        now = self._clock()
        params = {**values, "now": now, "id": record.id}
        with self._lock, self._transaction():
            row = self._conn.execute(
                f"UPDATE approvals SET {assignments} WHERE id = :id AND status = 'pending' "
                "AND expires_at > :now RETURNING *",
                params,
            ).fetchone()
        if row is not None:
            return _record(row)
        current = self.get(record.id)  # expires it if the deadline passed meanwhile
        self._require(current, ApprovalStatus.PENDING, action)
        raise ApprovalError(f"approval {record.id} changed state; try again", current.status)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """`BEGIN IMMEDIATE` … `COMMIT`, rolled back on error (caller holds the lock)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")


def _record(row: sqlite3.Row) -> ApprovalRecord:
    values = {key: row[key] for key in row.keys() if key != "claim_token"}  # noqa: SIM118
    for column in _JSON_COLUMNS:
        if values[column] is not None:
            values[column] = json.loads(values[column])
    if values["outcome"] is not None:
        values["outcome"] = json.loads(values["outcome"])
    values["status"] = ApprovalStatus(values["status"])
    return ApprovalRecord(**values)
