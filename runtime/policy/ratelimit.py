"""Sliding-window rate limits: the store interface and two stores.

A limit allows `capacity` calls in any window of `window_s` seconds for one
key (the limit id plus the values of its `per` fields). Windows are exact
sliding logs: each allowed call records its timestamp, and a call is admitted
when fewer than `capacity` timestamps lie in `(now - window_s, now]`.
`try_acquire` checks every limit that applies to a call and records the call
in all of them, or in none, as one atomic step, so a burst from many tasks or
threads admits exactly `capacity` calls.

`SQLiteRateLimitStore` is the default: windows survive restarts and are
shared by every process on the machine that opens the same file. Its cost is
one short write transaction (WAL, `synchronous=NORMAL`, so no fsync per
commit) for each call that passed the rules and that a limit applies to.
Measured on a 2-core machine with ~100 live events in the window: `decide`
p50 26 µs with SQLite against 10 µs in memory (p99 ~100 µs, WAL
checkpoints). Counting is an index range scan, so the cost grows with the
number of calls live in a window (keep capacities in the hundreds). While
another process holds the write lock, `decide` blocks for up to
`busy_timeout_s` and then denies; under heavy multi-process contention call
`decide` through `asyncio.to_thread`. Calls no limit applies to never touch
the store. `InMemoryRateLimitStore` costs about 1 µs and forgets on exit; use
it in tests and single-process tools. Behind a fleet, implement
`RateLimitStore` over a shared store (Redis, Postgres).

Timestamps are wall-clock seconds (`time.time`) so processes agree on them.
"""

from __future__ import annotations

import collections
import dataclasses
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from runtime.storage.sql import Database, Migration, Session

__all__ = [
    "DEFAULT_RATE_LIMIT_DB",
    "RATE_LIMIT_MIGRATIONS",
    "InMemoryRateLimitStore",
    "LimitCheck",
    "PostgresRateLimitStore",
    "RateLimitStore",
    "SQLiteRateLimitStore",
]

DEFAULT_RATE_LIMIT_DB = Path(".agentrt/ratelimits.db")


@dataclasses.dataclass(frozen=True, slots=True)
class LimitCheck:
    """One window a call must fit in.

    Attributes:
        limit_id: The policy's limit id, reported when the window is full.
        key: The window's identity: limit id plus the caller's `per` values.
        capacity: Calls allowed per window.
        window_s: Window length in seconds.
    """

    limit_id: str
    key: str
    capacity: int
    window_s: float


class RateLimitStore(Protocol):
    """Where sliding windows live. Implementations must be thread-safe."""

    def try_acquire(self, checks: Sequence[LimitCheck], now: float) -> str | None:
        """Record one call in every window if all have room; else record nothing.

        Returns:
            None when the call was admitted, else the id of the first full limit.
        """
        ...

    def peek(self, checks: Sequence[LimitCheck], now: float) -> str | None:
        """Say which limit would refuse the call now, recording nothing."""
        ...

    def close(self) -> None:
        """Release the store's resources."""
        ...


class InMemoryRateLimitStore:
    """Windows in a dict, guarded by one lock: fast, per process, lost on exit."""

    _SWEEP_EVERY = 4096

    def __init__(self) -> None:
        self._events: dict[str, tuple[float, collections.deque[float]]] = {}
        self._lock = threading.Lock()
        self._since_sweep = 0

    def _count(self, check: LimitCheck, now: float) -> int:
        entry = self._events.get(check.key)
        if entry is None:
            return 0
        events = entry[1]
        cutoff = now - check.window_s
        while events and events[0] <= cutoff:
            events.popleft()
        return len(events)

    def try_acquire(self, checks: Sequence[LimitCheck], now: float) -> str | None:
        """See `RateLimitStore.try_acquire`."""
        with self._lock:
            for check in checks:
                if self._count(check, now) >= check.capacity:
                    return check.limit_id
            for check in checks:
                entry = self._events.get(check.key)
                if entry is None:
                    entry = self._events[check.key] = (check.window_s, collections.deque())
                entry[1].append(now)
            self._since_sweep += 1
            if self._since_sweep >= self._SWEEP_EVERY:
                self._sweep(now)
            return None

    def peek(self, checks: Sequence[LimitCheck], now: float) -> str | None:
        """See `RateLimitStore.peek`."""
        with self._lock:
            for check in checks:
                if self._count(check, now) >= check.capacity:
                    return check.limit_id
            return None

    def _sweep(self, now: float) -> None:
        # Drop windows whose newest call has aged out, so one key per
        # conversation does not grow the dict for ever.
        self._since_sweep = 0
        stale = [k for k, (w, ev) in self._events.items() if not ev or ev[-1] <= now - w]
        for key in stale:
            del self._events[key]

    def close(self) -> None:
        """Forget every window."""
        with self._lock:
            self._events.clear()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS rate_events (key TEXT NOT NULL, ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS rate_events_key_ts ON rate_events (key, ts);
"""


class SQLiteRateLimitStore:
    """Windows in a SQLite file: survive restarts, shared by processes on one machine.

    One connection per store, serialised by a lock within the process;
    `BEGIN IMMEDIATE` takes SQLite's write lock, which serialises processes.

    Args:
        path: Database file; its folder is created.
        busy_timeout_s: How long to wait for another process's write lock
            before giving up (the engine then denies the call).
    """

    def __init__(self, path: str | Path = DEFAULT_RATE_LIMIT_DB, *, busy_timeout_s: float = 2.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode skips the fsync per commit; a power cut may
            # forget the last few calls, which only loosens a window briefly.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)

    def _full(self, check: LimitCheck, now: float) -> bool:
        self._conn.execute(
            "DELETE FROM rate_events WHERE key = ? AND ts <= ?", (check.key, now - check.window_s)
        )
        row = self._conn.execute(
            "SELECT COUNT(*) FROM rate_events WHERE key = ? AND ts > ?",
            (check.key, now - check.window_s),
        ).fetchone()
        return bool(row[0] >= check.capacity)

    def try_acquire(self, checks: Sequence[LimitCheck], now: float) -> str | None:
        """See `RateLimitStore.try_acquire`."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for check in checks:
                    if self._full(check, now):
                        self._conn.execute("COMMIT")  # keeps the pruning
                        return check.limit_id
                self._conn.executemany(
                    "INSERT INTO rate_events (key, ts) VALUES (?, ?)",
                    [(check.key, now) for check in checks],
                )
                self._conn.execute("COMMIT")
                return None
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def peek(self, checks: Sequence[LimitCheck], now: float) -> str | None:
        """See `RateLimitStore.peek`."""
        with self._lock:
            for check in checks:
                row = self._conn.execute(
                    "SELECT COUNT(*) FROM rate_events WHERE key = ? AND ts > ?",
                    (check.key, now - check.window_s),
                ).fetchone()
                if row[0] >= check.capacity:
                    return check.limit_id
            return None

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


#: The shared windows' tables (`Database.migrate`, component `rate_limits`).
RATE_LIMIT_MIGRATIONS = (
    Migration(
        1,
        """
CREATE TABLE IF NOT EXISTS rate_windows (key TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS rate_events (key TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS rate_events_key_ts ON rate_events (key, ts)
""",
    ),
)


class PostgresRateLimitStore:
    """Windows in PostgreSQL, exact across every replica that uses the database.

    A call's check-and-record is one transaction that first locks each
    window's row (`rate_windows`, created on first use) in key order, so two
    replicas deciding at once take turns and never deadlock; the count and the
    insert then see every committed call.

    Args:
        database: A `PostgresDatabase` (shared with the approval store or not).
        owns_database: Close the database with the store.
    """

    def __init__(self, database: Database, *, owns_database: bool = False) -> None:
        if database.dialect != "postgresql":
            raise ValueError("PostgresRateLimitStore needs a PostgreSQL database")
        self._db = database
        self._owns = owns_database
        database.migrate("rate_limits", RATE_LIMIT_MIGRATIONS)

    def _full(self, session: Session, check: LimitCheck, now: float) -> bool:
        cutoff = now - check.window_s
        session.run("DELETE FROM rate_events WHERE key = ? AND ts <= ?", (check.key, cutoff))
        row = session.one(
            "SELECT COUNT(*) AS n FROM rate_events WHERE key = ? AND ts > ?", (check.key, cutoff)
        )
        return row is not None and int(row["n"]) >= check.capacity

    def try_acquire(self, checks: Sequence[LimitCheck], now: float) -> str | None:
        """See `RateLimitStore.try_acquire`."""
        keys = sorted({check.key for check in checks})
        with self._db.transaction() as session:
            session.many(
                "INSERT INTO rate_windows (key) VALUES (?) ON CONFLICT (key) DO NOTHING",
                [(key,) for key in keys],
            )
            session.all(
                "SELECT key FROM rate_windows WHERE key = ANY(?) ORDER BY key FOR UPDATE",
                (keys,),
            )
            for check in checks:
                if self._full(session, check, now):
                    return check.limit_id  # the pruning commits with the block
            session.many(
                "INSERT INTO rate_events (key, ts) VALUES (?, ?)",
                [(check.key, now) for check in checks],
            )
        return None

    def peek(self, checks: Sequence[LimitCheck], now: float) -> str | None:
        """See `RateLimitStore.peek`."""
        with self._db.read() as session:
            for check in checks:
                row = session.one(
                    "SELECT COUNT(*) AS n FROM rate_events WHERE key = ? AND ts > ?",
                    (check.key, now - check.window_s),
                )
                if row is not None and int(row["n"]) >= check.capacity:
                    return check.limit_id
        return None

    def close(self) -> None:
        """Close the database if this store owns it."""
        if self._owns:
            self._db.close()
