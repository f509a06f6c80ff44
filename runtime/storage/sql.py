"""One small SQL interface over SQLite (embedded) and PostgreSQL (shared by replicas).

Stores write their statements once, with `?` and `:name` placeholders, and
run them in a `Session` that a `Database` opens for one transaction:

    with db.transaction() as session:
        row = session.one("UPDATE t SET status = 'x' WHERE id = ? RETURNING *", (id_,))

SQLite: one connection per database object, serialised by a lock;
transactions are `BEGIN IMMEDIATE` (the file's write lock serialises
processes). PostgreSQL: a psycopg 3 connection pool; each transaction takes
a connection and commits (or rolls back) when the block ends. Cross-process
correctness comes from the statements themselves: conditional updates, row
locks (`FOR UPDATE`), and `SKIP LOCKED` for queues.

Every PostgreSQL connection failure surfaces as `StoreUnavailable`, whose
message names the server (never its password): the caller answers 503 and
nothing was half-done, because the transaction did not commit.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import functools
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from runtime.storage.url import StoreURL

__all__ = [
    "Database",
    "Migration",
    "PostgresDatabase",
    "SQLiteDatabase",
    "SchemaTooNew",
    "Session",
    "StoreError",
    "StoreUnavailable",
    "open_database",
]

Params = Sequence[Any] | Mapping[str, Any]
Row = dict[str, Any]


class StoreError(RuntimeError):
    """The state store cannot do what was asked; the message says what to do next."""


class StoreUnavailable(StoreError):
    """The store cannot be reached (PostgreSQL down, pool exhausted); nothing was committed."""


class SchemaTooNew(StoreError):
    """The database was migrated by a newer agentrt than this one; refuse to touch it."""


@dataclasses.dataclass(frozen=True, slots=True)
class Migration:
    """One step of a component's schema.

    Attributes:
        version: 1, 2, …; applied in order, each once.
        sql: Statements separated by `;` (no `;` inside literals), valid in
            both dialects unless `postgresql` overrides them.
        postgresql: The PostgreSQL text, when it must differ.
    """

    version: int
    sql: str
    postgresql: str | None = None

    def text(self, dialect: str) -> str:
        return self.postgresql if dialect == "postgresql" and self.postgresql else self.sql


class Session(abc.ABC):
    """The statements of one transaction (or one read)."""

    @abc.abstractmethod
    def _execute(self, sql: str, params: Params) -> Any: ...

    def one(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of the result, or None."""
        cursor = self._execute(sql, params)
        row = cursor.fetchone()
        return _as_row(row) if row is not None else None

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        """Every row of the result."""
        return [_as_row(row) for row in self._execute(sql, params).fetchall()]

    def run(self, sql: str, params: Params = ()) -> int:
        """Execute; the number of rows changed."""
        return int(self._execute(sql, params).rowcount)

    @abc.abstractmethod
    def many(self, sql: str, rows: Iterable[Params]) -> None:
        """Execute once per parameter set."""

    def script(self, text: str) -> None:
        """Run `;`-separated statements without parameters, inside this transaction."""
        for statement in text.split(";"):
            if statement.strip():
                self._execute(statement, ())


def _as_row(row: Any) -> Row:
    if isinstance(row, dict):
        return row
    return {key: row[key] for key in row.keys()}  # noqa: SIM118 (sqlite3.Row)


class Database(abc.ABC):
    """A SQL database the stores share; thread-safe. Close it when done."""

    dialect: str
    url: StoreURL

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[Session]:
        """A write transaction: committed when the block ends, rolled back on error."""

    def read(self) -> contextlib.AbstractContextManager[Session]:
        """A read (a transaction too; reads see committed data)."""
        return self.transaction()

    @abc.abstractmethod
    def _lock_migrations(self, session: Session) -> None: ...

    def migrate(self, component: str, migrations: Sequence[Migration]) -> int:
        """Bring `component`'s tables to the newest version this code knows.

        Concurrent processes migrate one at a time (SQLite's write lock, an
        advisory lock on PostgreSQL), and each step is applied once.

        Returns:
            The schema version now in place.

        Raises:
            SchemaTooNew: A newer agentrt migrated this database further.
        """
        known = max(m.version for m in migrations)
        with self.transaction() as session:
            self._lock_migrations(session)
            session.script(
                "CREATE TABLE IF NOT EXISTS agentrt_schema (component TEXT PRIMARY KEY, "
                "version INTEGER NOT NULL, migrated_at DOUBLE PRECISION NOT NULL)"
            )
            row = session.one(
                "SELECT version FROM agentrt_schema WHERE component = ?", (component,)
            )
            current = int(row["version"]) if row is not None else 0
            if current > known:
                raise SchemaTooNew(
                    f"the {component} tables in {self.url} are at schema version {current}, "
                    f"newer than this agentrt knows (up to {known}): upgrade agentrt, or give "
                    f"it a store of its own"
                )
            for migration in sorted(migrations, key=lambda m: m.version):
                if migration.version > current:
                    session.script(migration.text(self.dialect))
            if known != current:
                session.run(
                    "INSERT INTO agentrt_schema (component, version, migrated_at) VALUES (?,?,?) "
                    "ON CONFLICT (component) DO UPDATE SET version = excluded.version, "
                    "migrated_at = excluded.migrated_at",
                    (component, known, time.time()),
                )
        return known

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections."""


# ---------------------------------------------------------------------- SQLite


class _SQLiteSession(Session):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def _execute(self, sql: str, params: Params) -> Any:
        return self._conn.execute(sql, params)

    def many(self, sql: str, rows: Iterable[Params]) -> None:
        self._conn.executemany(sql, rows)


class SQLiteDatabase(Database):
    """A SQLite file (WAL): shared by the threads of a process and the processes of a host.

    Args:
        path: The file; its folder is created.
        synchronous: `FULL` (fsync each commit: approvals) or `NORMAL`.
        busy_timeout_s: How long to wait for another process's write lock.
    """

    dialect = "sqlite"

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        busy_timeout_s: float = 10.0,
    ) -> None:
        self.path = Path(path)
        self.url = StoreURL("sqlite", f"sqlite:///{self.path}", self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self._conn.row_factory = sqlite3.Row
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={synchronous}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteSession(self._conn)
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with self._lock:
            yield _SQLiteSession(self._conn)

    def _lock_migrations(self, session: Session) -> None:
        pass  # BEGIN IMMEDIATE holds the file's write lock already

    def close(self) -> None:
        with self._lock:
            self._conn.close()


# ---------------------------------------------------------------------- PostgreSQL

# pg_advisory_xact_lock key serialising schema migrations of every component.
_MIGRATION_LOCK = 0x61677274  # "agrt"
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=512)
def postgres_sql(sql: str) -> str:
    """`?` / `:name` placeholders as psycopg's `%s` / `%(name)s` (a literal `%` doubled)."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%")).replace("?", "%s")


class _PostgresSession(Session):
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def _execute(self, sql: str, params: Params) -> Any:
        if params:
            self._cursor.execute(postgres_sql(sql), params)
        else:
            self._cursor.execute(sql)
        return self._cursor

    def one(self, sql: str, params: Params = ()) -> Row | None:
        cursor = self._execute(sql, params)
        if cursor.description is None:
            return None
        row = cursor.fetchone()
        return dict(row) if row is not None else None

    def all(self, sql: str, params: Params = ()) -> list[Row]:
        cursor = self._execute(sql, params)
        return [dict(row) for row in cursor.fetchall()] if cursor.description else []

    def many(self, sql: str, rows: Iterable[Params]) -> None:
        self._cursor.executemany(postgres_sql(sql), list(rows))


class PostgresDatabase(Database):
    """PostgreSQL through a psycopg 3 connection pool, shared by every replica.

    Args:
        url: `postgresql://user:password@host:port/dbname` (any libpq URL).
        min_size: Connections kept open.
        max_size: Connections at most (each transaction holds one briefly).
        timeout_s: How long a transaction waits for a connection (then
            `StoreUnavailable`).
        wait: Check at start that the server answers (`StoreUnavailable` otherwise).
    """

    dialect = "postgresql"

    def __init__(
        self,
        url: str | StoreURL,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout_s: float = 5.0,
        wait: bool = True,
    ) -> None:
        try:
            import psycopg  # noqa: F401
            from psycopg_pool import ConnectionPool
        except ImportError:
            raise StoreError(
                "a postgresql:// store needs psycopg: pip install 'agent-runtime[service]'"
            ) from None
        self.url = url if isinstance(url, StoreURL) else StoreURL.parse(url)
        self._timeout_s = timeout_s
        self._pool = ConnectionPool(
            self.url.raw,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout_s,
            open=False,
            check=ConnectionPool.check_connection,
            kwargs={"connect_timeout": max(1, int(timeout_s))},
            name="agentrt",
        )
        self._pool.open(wait=False)
        if wait:
            try:
                with self.transaction() as session:
                    session.one("SELECT 1 AS ok")
            except BaseException:
                self._pool.close()
                raise

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        import psycopg
        from psycopg.rows import dict_row
        from psycopg_pool import PoolTimeout

        try:
            with (
                self._pool.connection(timeout=self._timeout_s) as conn,
                conn.cursor(row_factory=dict_row) as cursor,
            ):
                yield _PostgresSession(cursor)
        except PoolTimeout as exc:
            raise self.unavailable(exc) from exc
        except psycopg.OperationalError as exc:
            if connection_failed(exc):
                raise self.unavailable(exc) from exc
            raise

    def connect(self, **options: Any) -> Any:
        """A connection of its own, outside the pool (for session-level advisory locks)."""
        import psycopg

        try:
            return psycopg.connect(
                self.url.raw,
                autocommit=True,
                connect_timeout=max(1, int(self._timeout_s)),
                **options,
            )
        except psycopg.OperationalError as exc:
            raise self.unavailable(exc) from exc

    def unavailable(self, exc: BaseException) -> StoreUnavailable:
        """The error to raise for a failure to reach the server."""
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StoreUnavailable(
            f"the PostgreSQL store {self.url} is unavailable ({detail}); nothing was changed, "
            f"try again once it is back"
        )

    def _lock_migrations(self, session: Session) -> None:
        session.one("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))

    def close(self) -> None:
        self._pool.close()


def connection_failed(exc: BaseException) -> bool:
    """True for errors that mean the server is gone, not that a statement failed.

    Client-side connection errors carry no SQLSTATE; class 08 is "connection
    exception", 57P "operator intervention" (shutdown, crash, starting up).
    """
    sqlstate = getattr(exc, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith(("08", "57P"))


def open_database(url: str | StoreURL, **options: Any) -> Database:
    """A `Database` for a store URL (`sqlite:///PATH` or `postgresql://…`).

    Raises:
        ValueError: The URL is not one of those.
        StoreUnavailable: PostgreSQL cannot be reached.
    """
    parsed = url if isinstance(url, StoreURL) else StoreURL.parse(url)
    if parsed.kind == "sqlite":
        assert parsed.path is not None
        return SQLiteDatabase(parsed.path, **options)
    return PostgresDatabase(parsed, **options)
