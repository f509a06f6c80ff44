"""The service's runs, shared by every replica: status, result, owner, and per-stage events.

A run row is written before the model is asked (so a store that cannot be
reached refuses the run with nothing done), owned by the replica driving it,
and finished with the same JSON `agentrt run --json` prints. Resuming a run
after approvals is claimed by one conditional update
(`pending_approval → running`), so however many replicas see the approval,
one resumes it. While a replica drives a run it also holds the run's liveness
lock (`runtime.approvals.claim_locks`): a run still `running` whose lock is
free lost its replica, and is reported `interrupted`.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

from runtime.storage.sql import Database, Migration, Row

__all__ = ["RUN_MIGRATIONS", "RunStore", "ServiceRun"]

RUN_MIGRATIONS = (
    Migration(
        1,
        """
CREATE TABLE IF NOT EXISTS service_runs (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, agent TEXT, status TEXT NOT NULL,
    input TEXT NOT NULL, context TEXT NOT NULL, result TEXT, owner TEXT,
    created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS service_runs_tenant ON service_runs (tenant, created_at);
CREATE TABLE IF NOT EXISTS service_run_events (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, ts DOUBLE PRECISION NOT NULL,
    event TEXT NOT NULL, PRIMARY KEY (run_id, seq)
)
""",
    ),
)

#: Statuses after which a run changes no more (`pending_approval` waits for a resume).
FINAL_STATUSES = frozenset(
    {
        "completed",
        "max_turns",
        "retries_exhausted",
        "model_error",
        "audit_error",
        "context_error",
        "interrupted",
        "failed",
    }
)


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceRun:
    """One run as the service keeps it."""

    id: str
    tenant: str
    agent: str | None
    status: str
    input: str
    context: dict[str, Any]
    result: dict[str, Any] | None
    owner: str | None
    created_at: float
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        """The run's JSON: its result (as `agentrt run --json`) once it has one."""
        if self.result is not None:
            out = dict(self.result)
            out["status"] = self.status if self.status == "interrupted" else out["status"]
        else:
            out = {"status": self.status, "run_id": self.id}
        out.update(
            {
                "run_id": self.id,
                "tenant": self.tenant,
                "agent": self.agent,
                "created_at": self.created_at,
                "updated_at": self.updated_at,
            }
        )
        return out


def _run(row: Row) -> ServiceRun:
    return ServiceRun(
        id=row["id"],
        tenant=row["tenant"],
        agent=row["agent"],
        status=row["status"],
        input=row["input"],
        context=json.loads(row["context"]),
        result=json.loads(row["result"]) if row["result"] else None,
        owner=row["owner"],
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
    )


class RunStore:
    """Service runs and their events in the state store's database. Thread-safe, blocking."""

    def __init__(self, database: Database) -> None:
        self._db = database
        database.migrate("service_runs", RUN_MIGRATIONS)

    def create(
        self,
        run_id: str,
        *,
        tenant: str,
        agent: str | None,
        input: str,
        context: dict[str, Any],
        owner: str,
    ) -> ServiceRun:
        """Record a run that is starting (`running`, owned by `owner`)."""
        now = time.time()
        with self._db.transaction() as session:
            row = session.one(
                "INSERT INTO service_runs (id, tenant, agent, status, input, context, owner, "
                "created_at, updated_at) VALUES (?,?,?,'running',?,?,?,?,?) RETURNING *",
                (run_id, tenant, agent, input, json.dumps(context), owner, now, now),
            )
        assert row is not None
        return _run(row)

    def get(self, run_id: str) -> ServiceRun | None:
        """The run, or None."""
        with self._db.read() as session:
            row = session.one("SELECT * FROM service_runs WHERE id = ?", (run_id,))
        return _run(row) if row is not None else None

    def list(self, tenant: str, *, limit: int = 50) -> list[ServiceRun]:
        """A tenant's newest runs."""
        with self._db.read() as session:
            rows = session.all(
                "SELECT * FROM service_runs WHERE tenant = ? ORDER BY created_at DESC LIMIT ?",
                (tenant, limit),
            )
        return [_run(row) for row in rows]

    def finish(self, run_id: str, owner: str, status: str, result: dict[str, Any]) -> bool:
        """Store the run's result; False when `owner` no longer owns it."""
        with self._db.transaction() as session:
            changed = session.run(
                "UPDATE service_runs SET status = ?, result = ?, updated_at = ? "
                "WHERE id = ? AND owner = ? AND status = 'running'",
                (status, json.dumps(result, default=str), time.time(), run_id, owner),
            )
        return changed == 1

    def claim_resume(self, run_id: str, owner: str) -> bool:
        """Take the one right to resume a paused run (`pending_approval → running`)."""
        with self._db.transaction() as session:
            changed = session.run(
                "UPDATE service_runs SET status = 'running', owner = ?, updated_at = ? "
                "WHERE id = ? AND status = 'pending_approval'",
                (owner, time.time(), run_id),
            )
        return changed == 1

    def has_resumable(self) -> bool:
        """Whether some paused run has all its approvals decided (`claim_resumable` would find it)."""
        with self._db.read() as session:
            row = session.one(
                "SELECT 1 AS found FROM service_runs r WHERE status = 'pending_approval' AND NOT "
                "EXISTS (SELECT 1 FROM approvals a WHERE a.run_id = r.id AND a.status = 'pending') "
                "LIMIT 1"
            )
        return row is not None

    def claim_resumable(
        self, owner: str, take_lock: Callable[[str], bool], *, limit: int = 10
    ) -> builtins.list[ServiceRun]:
        """Claim paused runs whose approvals are all decided (the resume queue).

        For runs whose last approval was decided where no replica resumes it:
        through `agentrt approvals`, by expiry, or on a replica that died before
        resuming. Candidates are locked with `FOR UPDATE SKIP LOCKED`
        (PostgreSQL), so replicas sweeping at once take different runs; each
        is claimed only if `take_lock(run_id)` (the run's liveness lock) succeeds,
        before the claim commits.
        """
        skip = " FOR UPDATE SKIP LOCKED" if self._db.dialect == "postgresql" else ""
        claimed = []
        with self._db.transaction() as session:
            rows = session.all(
                "SELECT id FROM service_runs r WHERE status = 'pending_approval' AND NOT EXISTS "
                "(SELECT 1 FROM approvals a WHERE a.run_id = r.id AND a.status = 'pending') "
                f"ORDER BY updated_at LIMIT ?{skip}",
                (limit,),
            )
            for row in rows:
                if not take_lock(row["id"]):
                    continue
                found = session.one(
                    "UPDATE service_runs SET status = 'running', owner = ?, updated_at = ? "
                    "WHERE id = ? AND status = 'pending_approval' RETURNING *",
                    (owner, time.time(), row["id"]),
                )
                if found is not None:
                    claimed.append(_run(found))
        return claimed

    def mark_interrupted(self, run_id: str, owner: str | None, error: str) -> ServiceRun | None:
        """Record that the replica `owner` stopped while running it (if nothing changed since)."""
        with self._db.transaction() as session:
            row = session.one(
                "UPDATE service_runs SET status = 'interrupted', result = ?, updated_at = ? "
                "WHERE id = ? AND status = 'running' AND owner = ? RETURNING *",
                (
                    json.dumps({"status": "interrupted", "run_id": run_id, "error": error}),
                    time.time(),
                    run_id,
                    owner,
                ),
            )
        return _run(row) if row is not None else None

    def add_event(self, run_id: str, event: dict[str, Any]) -> int:
        """Append one event; its sequence number (1, 2, …)."""
        with self._db.transaction() as session:
            row = session.one(
                "INSERT INTO service_run_events (run_id, seq, ts, event) SELECT ?, "
                "COALESCE(MAX(seq), 0) + 1, ?, ? FROM service_run_events WHERE run_id = ? "
                "RETURNING seq",
                (run_id, time.time(), json.dumps(event, default=str), run_id),
            )
        assert row is not None
        return int(row["seq"])

    def events(self, run_id: str, after: int = 0) -> builtins.list[tuple[int, dict[str, Any]]]:
        """The run's events with a sequence number above `after`, in order."""
        with self._db.read() as session:
            rows = session.all(
                "SELECT seq, event FROM service_run_events WHERE run_id = ? AND seq > ? "
                "ORDER BY seq",
                (run_id, after),
            )
        return [(int(row["seq"]), json.loads(row["event"])) for row in rows]
