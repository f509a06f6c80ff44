"""Persisted human approvals: pending calls, decisions, and execute-exactly-once claims.

A call whose policy decision is `require_approval` is stored (a SQLite file
by default, PostgreSQL to share it between replicas: `ApprovalStore.open(URL)`)
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

Running elsewhere vs. interrupted: the claimant also holds a lock on the
call from before its claim until its outcome is recorded (an exclusive
`flock` on `PATH.claims/ID.lock` with SQLite, a session advisory lock with
PostgreSQL: `runtime.approvals.claim_locks`); the kernel or the server drops
it if the process dies. So another process that finds a call `executing`
can tell a live claimant (`claim_holder` gives its pid; `wait_for_claim`
waits for its outcome) from a dead one (the lock is free: the call was
interrupted).

Rejected and expired calls are denials: the resumed run tells the model so.
All transitions are atomic conditional updates, so they hold across
processes and hosts on PostgreSQL as on SQLite; methods are thread-safe and
block briefly (call them through `asyncio.to_thread` from async code).
"""

from __future__ import annotations

import builtins
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from runtime.approvals.claim_locks import ClaimLocks, FileClaimLocks, PostgresClaimLocks
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
from runtime.storage.sql import (
    Database,
    Migration,
    PostgresDatabase,
    Row,
    SQLiteDatabase,
    open_database,
)
from runtime.storage.url import StoreURL

__all__ = ["APPROVAL_MIGRATIONS", "DEFAULT_APPROVALS_DB", "ApprovalStore"]

DEFAULT_APPROVALS_DB = Path(".agentrt/approvals.db")
DEFAULT_TIMEOUT_S = 900.0

#: The approval tables, version by version (`Database.migrate`).
APPROVAL_MIGRATIONS = (
    Migration(
        1,
        """
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL, call_id TEXT NOT NULL, tool TEXT NOT NULL,
    arguments TEXT NOT NULL, edited_arguments TEXT, context TEXT NOT NULL,
    decision TEXT NOT NULL, status TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL,
    decided_at DOUBLE PRECISION, decided_by TEXT, note TEXT, recheck_decision TEXT,
    claim_token TEXT, claimed_at DOUBLE PRECISION, finished_at DOUBLE PRECISION, outcome TEXT,
    UNIQUE (run_id, call_id)
);
CREATE INDEX IF NOT EXISTS approvals_status ON approvals (status, expires_at);
CREATE TABLE IF NOT EXISTS run_states (
    run_id TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL
)
""",
    ),
    # The tenant as a column: an approver's list is filtered by it in SQL.
    Migration(
        2,
        """
ALTER TABLE approvals ADD COLUMN tenant TEXT;
UPDATE approvals SET tenant = json_extract(context, '$.tenant');
CREATE INDEX IF NOT EXISTS approvals_tenant ON approvals (tenant, status)
""",
        postgresql="""
ALTER TABLE approvals ADD COLUMN tenant TEXT;
UPDATE approvals SET tenant = context::json->>'tenant';
CREATE INDEX IF NOT EXISTS approvals_tenant ON approvals (tenant, status)
""",
    ),
)
_JSON_COLUMNS = ("arguments", "edited_arguments", "context", "decision", "recheck_decision")
_HIDDEN_COLUMNS = ("claim_token", "tenant")


def _dumps(value: Any) -> str:
    # allow_nan=False: a NaN must never be stored and later re-read as a number.
    return json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))


class ApprovalStore:
    """Approvals in a SQL database, shared safely by threads, processes and (PostgreSQL) hosts.

    Args:
        path: SQLite database file (default `.agentrt/approvals.db`); folder
            created. Or a `Database` (see `ApprovalStore.open` for a URL).
        clock: Wall-clock seconds; inject a fake one in tests.
        default_timeout_s: Used when a decision carries no approval timeout.
        claim_locks: Live-claimant locks; by default files next to a SQLite
            database, advisory locks on PostgreSQL.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | Database = DEFAULT_APPROVALS_DB,
        *,
        clock: Callable[[], float] = time.time,
        default_timeout_s: float = DEFAULT_TIMEOUT_S,
        claim_locks: ClaimLocks | None = None,
    ) -> None:
        if isinstance(path, Database):
            self._db, self._owns_db = path, False
        else:
            self._db, self._owns_db = SQLiteDatabase(Path(path)), True
        self._clock = clock
        self._default_timeout_s = default_timeout_s
        self._locks = claim_locks or _default_locks(self._db)
        try:
            self._db.migrate("approvals", APPROVAL_MIGRATIONS)
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(cls, url: str | StoreURL, **options: Any) -> ApprovalStore:
        """The store at `sqlite:///PATH` or `postgresql://…` (the store owns the connection).

        Raises:
            ValueError: Not a store URL.
            StoreUnavailable: PostgreSQL cannot be reached.
            SchemaTooNew: The database was migrated by a newer agentrt.
        """
        database = open_database(url)
        try:
            store = cls(database, **options)
        except BaseException:
            database.close()
            raise
        store._owns_db = True
        return store

    @property
    def database(self) -> Database:
        """Where the approvals live."""
        return self._db

    @property
    def path(self) -> Path | None:
        """The SQLite file, or None for PostgreSQL."""
        return self._db.url.path

    def close(self) -> None:
        """Close the database connection (and drop the claim locks this store holds)."""
        self._locks.close()
        if self._owns_db:
            self._db.close()

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
                    call.context.tenant,
                )
            )
        state = _dumps(run_state) if run_state is not None else None
        with self._db.transaction() as session:
            session.many(
                "INSERT INTO approvals (id, run_id, call_id, tool, arguments, context,"
                " decision, status, created_at, expires_at, tenant) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT (run_id, call_id) DO NOTHING",
                rows,
            )
            if state is not None and run:
                _save_state(session, run, state, now)
            found = [
                session.one(
                    "SELECT * FROM approvals WHERE run_id = ? AND call_id = ?", (run, c.call_id)
                )
                for c in calls
            ]
        by_call = {row["call_id"]: _record(row) for row in found if row is not None}
        return [by_call[c.call_id] for c in calls]

    def save_run_state(self, run_id: str, state: Any) -> None:
        """Store (replace) the opaque, JSON-serialisable state of a paused run."""
        text = _dumps(state)
        with self._db.transaction() as session:
            _save_state(session, run_id, text, self._clock())

    def load_run_state(self, run_id: str) -> Any:
        """The state saved for a run, or None."""
        with self._db.read() as session:
            row = session.one("SELECT state FROM run_states WHERE run_id = ?", (run_id,))
        return json.loads(row["state"]) if row is not None else None

    # ------------------------------------------------------------------ reading

    def get(self, approval_id: str) -> ApprovalRecord:
        """One approval by id or unique id prefix (at least 6 characters).

        Raises:
            ApprovalNotFound: No such approval, or the prefix is ambiguous.
        """
        self.expire_due()
        with self._db.read() as session:
            return _get(session, approval_id)

    def list(
        self,
        *,
        status: ApprovalStatus | str | None = None,
        run_id: str | None = None,
        tenant: str | None = None,
    ) -> list[ApprovalRecord]:
        """Approvals, oldest first, optionally filtered by status, run and tenant."""
        self.expire_due()
        query, params = "SELECT * FROM approvals WHERE 1=1", []
        if status is not None:
            query += " AND status = ?"
            params.append(str(ApprovalStatus(status)))
        if run_id is not None:
            query += " AND run_id = ?"
            params.append(run_id)
        if tenant is not None:
            query += " AND tenant = ?"
            params.append(tenant)
        with self._db.read() as session:
            rows = session.all(query + " ORDER BY created_at, id", params)
        return [_record(row) for row in rows]

    def run_is_resolved(self, run_id: str) -> bool:
        """True when no call of the run is still pending (the run may resume)."""
        return not self.list(status=ApprovalStatus.PENDING, run_id=run_id)

    def expire_due(self) -> builtins.list[ApprovalRecord]:
        """Mark pending approvals past their deadline as expired (denied)."""
        now = self._clock()
        with self._db.transaction() as session:
            rows = session.all(
                "UPDATE approvals SET status = 'expired', decided_at = ? "
                "WHERE status = 'pending' AND expires_at <= ? RETURNING *",
                (now, now),
            )
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
        if not self._locks.take(record.id):
            raise AlreadyClaimed(self.get(record.id), running_elsewhere=True)
        token = uuid.uuid4().hex
        now = self._clock()
        try:
            with self._db.transaction() as session:
                row = session.one(
                    "UPDATE approvals SET status = 'executing', claim_token = ?, claimed_at = ? "
                    "WHERE id = ? AND status = 'approved' RETURNING *",
                    (token, now, record.id),
                )
                current = row or session.one("SELECT * FROM approvals WHERE id = ?", (record.id,))
        except BaseException:
            self._locks.release(record.id, finished=False)
            raise
        if row is None:  # another resume won the race (and has finished)
            self._locks.release(record.id, finished=False)
            assert current is not None
            raise AlreadyClaimed(_record(current))
        return ExecutionClaim(_record(row), token)

    def unclaim(self, approval_id: str, token: str) -> ApprovalRecord:
        """Give back a claim whose call never started (`executing → approved`).

        For a failure before the tool was handed anything, e.g. the audit log
        refusing the `approval.granted` record: the call can be resumed later.

        Raises:
            ApprovalError: The token is not the claim's, or it is not executing.
        """
        try:
            with self._db.transaction() as session:
                row = session.one(
                    "UPDATE approvals SET status = 'approved', claim_token = NULL, "
                    "claimed_at = NULL WHERE id = ? AND status = 'executing' AND claim_token = ? "
                    "RETURNING *",
                    (approval_id, token),
                )
        finally:
            self._locks.release(approval_id, finished=False)
        if row is None:
            raise ApprovalError(f"approval {approval_id} is not executing under this claim")
        return _record(row)

    def forget_claim(self, approval_id: str) -> None:
        """Stop holding the claim lock without recording an outcome (the run was cancelled).

        The call stays `executing`: it may have run, so only an operator may
        `abandon` it; other processes now see it as interrupted.
        """
        self._locks.release(approval_id, finished=False)

    def claim_holder(self, approval_id: str) -> int | None:
        """The pid of the live process holding the call's claim, or None."""
        return self._locks.holder(approval_id)

    def wait_for_claim(self, approval_id: str, timeout_s: float) -> ApprovalRecord:
        """Wait (up to `timeout_s`) until no live process holds the claim; return the record.

        When the claimant finishes, the record carries its outcome; when it
        died, the record is still `executing` and `claim_holder` is None.
        """
        self._locks.wait(approval_id, timeout_s)
        return self.get(approval_id)

    def mark_executed(self, approval_id: str, token: str, outcome: Any) -> ApprovalRecord:
        """Record what the claimed call returned (any JSON), ending its life.

        Raises:
            ApprovalError: The token is not the claim's, or it is not executing.
        """
        now = self._clock()
        with self._db.transaction() as session:
            row = session.one(
                "UPDATE approvals SET status = 'executed', finished_at = ?, outcome = ? "
                "WHERE id = ? AND status = 'executing' AND claim_token = ? RETURNING *",
                (now, _dumps(outcome), approval_id, token),
            )
        if row is None:
            raise ApprovalError(f"approval {approval_id} is not executing under this claim")
        self._locks.release(approval_id, finished=True)  # after the commit: waiters read it
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
        with self._db.transaction() as session:
            row = session.one(
                "UPDATE approvals SET status = 'abandoned', finished_at = ?, decided_by = "
                "COALESCE(decided_by, ?), note = ? WHERE id = ? AND status = ? RETURNING *",
                (now, by, reason, record.id, record.status.value),
            )
        if row is None:
            raise ApprovalError(f"approval {record.id} changed state; try again")
        return _record(row)

    # ------------------------------------------------------------------ internals

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
        with self._db.transaction() as session:
            row = session.one(
                f"UPDATE approvals SET {assignments} WHERE id = :id AND status = 'pending' "
                "AND expires_at > :now RETURNING *",
                params,
            )
        if row is not None:
            return _record(row)
        current = self.get(record.id)  # expires it if the deadline passed meanwhile
        self._require(current, ApprovalStatus.PENDING, action)
        raise ApprovalError(f"approval {record.id} changed state; try again", current.status)


def _default_locks(db: Database) -> ClaimLocks:
    if isinstance(db, PostgresDatabase):
        return PostgresClaimLocks(db)
    assert db.url.path is not None
    path = db.url.path
    return FileClaimLocks(path.with_name(path.name + ".claims"))


def _save_state(session: Any, run_id: str, text: str, now: float) -> None:
    session.run(
        "INSERT INTO run_states (run_id, state, updated_at) VALUES (?,?,?) "
        "ON CONFLICT (run_id) DO UPDATE SET state = excluded.state, "
        "updated_at = excluded.updated_at",
        (run_id, text, now),
    )


def _get(session: Any, approval_id: str) -> ApprovalRecord:
    row = session.one("SELECT * FROM approvals WHERE id = ?", (approval_id,))
    if row is None and len(approval_id) >= 6 and approval_id.isalnum():
        rows = session.all("SELECT * FROM approvals WHERE id LIKE ? LIMIT 2", (approval_id + "%",))
        if len(rows) > 1:
            raise ApprovalNotFound(f"approval id prefix {approval_id!r} is ambiguous")
        row = rows[0] if rows else None
    if row is None:
        raise ApprovalNotFound(f"no approval {approval_id!r}")
    return _record(row)


def _record(row: Row) -> ApprovalRecord:
    values = {key: value for key, value in row.items() if key not in _HIDDEN_COLUMNS}
    for column in _JSON_COLUMNS:
        if values[column] is not None:
            values[column] = json.loads(values[column])
    if values["outcome"] is not None:
        values["outcome"] = json.loads(values["outcome"])
    values["status"] = ApprovalStatus(values["status"])
    return ApprovalRecord(**values)
