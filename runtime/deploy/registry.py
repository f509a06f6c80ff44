"""The record of deployed adapter versions, shared by every replica that reads the store.

Each deploy of an adapter under a name `NAME` gets the next version number and
is served as `NAME@vN`; a number is never reused, so the server never sees two
different adapters under one name (vLLM reuses prefix-cache blocks by adapter
name: vLLM #30931, #42125). At most one version of a name is `serving`: that is
what `agentrt run --model NAME` sends. States::

    loading ──► evaluating ──► serving ──► retired ──► (rollback) serving
       │             │            └──(rollback)──► rolled_back
       └──► failed   └──► rejected

`loaded` records whether the version is loaded on the server as far as the
registry knows (it was loaded and not yet unloaded; a server restart drops it,
which is why `run` also asks the server).

`AdapterRegistry` is the interface; `SQLAdapterRegistry` keeps it in the shared
store's SQL layer (`runtime.storage`): a SQLite file (WAL; the processes of
one host, or of a shared volume that supports locking, agree on it) or
PostgreSQL (replicas on several hosts), chosen by URL (`open_registry`). Its
tables are the `adapters` component's versioned migrations. Every write first
takes its name's row in `adapter_names` (a row lock on PostgreSQL; SQLite's
`BEGIN IMMEDIATE` serialises writers anyway), so promotion is a compare-and-set
on the serving version that two deploys racing for one name cannot both win,
and the row's `last_version` is the high-water mark that keeps numbers unique.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from runtime.model.call_form import CALL_FORMS, CallForm
from runtime.storage.sql import Database, Migration, Row, Session, SQLiteDatabase, open_database
from runtime.storage.url import StoreURL

__all__ = [
    "ADAPTER_MIGRATIONS",
    "DEFAULT_ADAPTER_STORE",
    "AdapterRegistry",
    "AdapterVersion",
    "RegistryError",
    "SQLAdapterRegistry",
    "SQLiteAdapterRegistry",
    "ServingChanged",
    "VersionStatus",
    "open_existing_registry",
    "open_registry",
    "served_name",
    "split_served_name",
    "store_url",
]

DEFAULT_ADAPTER_STORE = Path(".agentrt/adapters.db")  # next to the approvals database
VERSION_MARK = "@v"


class VersionStatus(enum.StrEnum):
    """Where one version of an adapter stands."""

    LOADING = "loading"
    FAILED = "failed"
    EVALUATING = "evaluating"
    REJECTED = "rejected"
    SERVING = "serving"
    RETIRED = "retired"
    ROLLED_BACK = "rolled_back"


class RegistryError(Exception):
    """The registry cannot do what was asked; the message says why."""


class ServingChanged(RegistryError):
    """Another deploy or rollback changed the serving version first.

    Attributes:
        expected: The serving version the caller worked against (None: none).
        actual: The serving version now.
    """

    def __init__(self, name: str, expected: int | None, actual: int | None) -> None:
        now = f"v{actual}" if actual is not None else "nothing"
        was = f"v{expected}" if expected is not None else "nothing"
        super().__init__(f"{name} now serves {now}, not {was}: it changed meanwhile")
        self.expected = expected
        self.actual = actual


def served_name(name: str, version: int) -> str:
    """The model name a version is loaded under on the server."""
    return f"{name}{VERSION_MARK}{version}"


def split_served_name(model: str) -> tuple[str, int] | None:
    """`NAME@vN` -> (NAME, N); None for a name without a version."""
    name, mark, number = model.rpartition(VERSION_MARK)
    if not mark or not name or not number.isdigit():
        return None
    return name, int(number)


@dataclasses.dataclass(frozen=True, slots=True)
class AdapterVersion:
    """One version of a deployed adapter.

    Attributes:
        name: The name clients ask for (`--model NAME`).
        version: Its number; served as `NAME@vN`.
        status: See `VersionStatus`.
        loaded: Loaded on the server, as far as the registry knows.
        path: The adapter directory its files were read from.
        server_path: The path the server was told to load.
        base_url: The server it was deployed to.
        base_model: The server's base model name.
        digest: sha256 over the loaded files' digests (its identity).
        files: sha256 of each loaded file.
        evaluation: The eval gate's figures (None before it ran).
        reason: Why it failed, was rejected or rolled back.
        created_at: When its number was reserved (seconds since the epoch).
        updated_at: Its last change.
        promoted_at: When it last became the serving version.
        call_form: The form its model writes calls in (`runtime.model.call_form`),
            from its manifest: clients asking for `name` use it.
        similar_requests: The worked requests it learned to see before a
            request, from its manifest: runs asking for `name` show as many.
    """

    name: str
    version: int
    status: VersionStatus
    loaded: bool
    path: str
    server_path: str
    base_url: str
    base_model: str
    digest: str
    files: dict[str, str]
    evaluation: dict[str, Any] | None
    reason: str | None
    created_at: float
    updated_at: float
    promoted_at: float | None
    call_form: CallForm = "plain"
    similar_requests: int = 0

    @property
    def served_name(self) -> str:
        return served_name(self.name, self.version)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["status"] = self.status.value
        out["served_name"] = self.served_name
        return out


class AdapterRegistry(Protocol):
    """Where deployed adapter versions are recorded (`SQLAdapterRegistry`: SQLite or PostgreSQL)."""

    def reserve(
        self,
        name: str,
        *,
        path: str,
        server_path: str,
        base_url: str,
        base_model: str,
        digest: str,
        files: Mapping[str, str],
        above: int = 0,
        call_form: CallForm = "plain",
        similar_requests: int = 0,
    ) -> AdapterVersion:
        """Take the next version number of `name` (greater than `above` too), status `loading`."""
        ...

    def update(
        self,
        name: str,
        version: int,
        *,
        status: VersionStatus | None = None,
        loaded: bool | None = None,
        evaluation: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> AdapterVersion:
        """Change one version's fields (never its status to or from `serving`)."""
        ...

    def promote(
        self,
        name: str,
        version: int,
        *,
        expected: int | None,
        demote_to: VersionStatus = VersionStatus.RETIRED,
        reason: str | None = None,
    ) -> AdapterVersion:
        """Make `version` the serving one if `expected` still is (else `ServingChanged`)."""
        ...

    def serving(self, name: str) -> AdapterVersion | None:
        """The version `name` resolves to, or None."""
        ...

    def get(self, name: str, version: int) -> AdapterVersion | None: ...

    def versions(self, name: str | None = None) -> list[AdapterVersion]:
        """Every version (of one name), by name then number."""
        ...

    def history(self, name: str) -> list[dict[str, Any]]:
        """What happened to `name`'s versions, oldest first."""
        ...

    def close(self) -> None: ...


#: The adapter tables, version by version (`Database.migrate`, component `adapters`).
ADAPTER_MIGRATIONS = (
    # The tables SQLite stores had before the shared store (hence IF NOT EXISTS):
    # a file written by an older agentrt is taken over as it is.
    Migration(
        1,
        """
CREATE TABLE IF NOT EXISTS adapter_versions (
    name TEXT NOT NULL, version INTEGER NOT NULL, status TEXT NOT NULL,
    loaded INTEGER NOT NULL DEFAULT 0, path TEXT NOT NULL, server_path TEXT NOT NULL,
    base_url TEXT NOT NULL, base_model TEXT NOT NULL, digest TEXT NOT NULL,
    files TEXT NOT NULL, evaluation TEXT, reason TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, promoted_at REAL,
    PRIMARY KEY (name, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS adapter_one_serving
    ON adapter_versions (name) WHERE status = 'serving';
CREATE TABLE IF NOT EXISTS adapter_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, version INTEGER NOT NULL,
    event TEXT NOT NULL, detail TEXT, at REAL NOT NULL
)
""",
        # REAL is 4 bytes in PostgreSQL: too coarse for a timestamp.
        postgresql="""
CREATE TABLE IF NOT EXISTS adapter_versions (
    name TEXT NOT NULL, version INTEGER NOT NULL, status TEXT NOT NULL,
    loaded INTEGER NOT NULL DEFAULT 0, path TEXT NOT NULL, server_path TEXT NOT NULL,
    base_url TEXT NOT NULL, base_model TEXT NOT NULL, digest TEXT NOT NULL,
    files TEXT NOT NULL, evaluation TEXT, reason TEXT,
    created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
    promoted_at DOUBLE PRECISION,
    PRIMARY KEY (name, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS adapter_one_serving
    ON adapter_versions (name) WHERE status = 'serving';
CREATE TABLE IF NOT EXISTS adapter_events (
    id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL,
    event TEXT NOT NULL, detail TEXT, at DOUBLE PRECISION NOT NULL
)
""",
    ),
    # One row per name: the lock every write of that name takes first, and the
    # highest number ever given out.
    Migration(
        2,
        """
CREATE TABLE IF NOT EXISTS adapter_names (name TEXT PRIMARY KEY, last_version INTEGER NOT NULL);
INSERT INTO adapter_names (name, last_version)
    SELECT name, MAX(version) FROM adapter_versions GROUP BY name
""",
    ),
    # How each version is asked, from its manifest: the form it writes calls in and the
    # worked requests it learned with. Versions deployed before: plain, none.
    Migration(
        3,
        """
ALTER TABLE adapter_versions ADD COLUMN call_form TEXT NOT NULL DEFAULT 'plain';
ALTER TABLE adapter_versions ADD COLUMN similar_requests INTEGER NOT NULL DEFAULT 0
""",
    ),
)


def store_url(url: str | os.PathLike[str] | StoreURL | None) -> StoreURL:
    """The adapter store a URL names.

    `sqlite:///rel/path` and `sqlite:////abs/path` (SQLAlchemy's spelling), a
    plain path (SQLite), `postgresql://USER@HOST:PORT/DB`, or None for
    `sqlite:///.agentrt/adapters.db`.

    Raises:
        RegistryError: Another kind of store, or `sqlite:///` without a path.
    """
    if isinstance(url, StoreURL):
        return url
    if url is None or os.fspath(url) == "":
        return StoreURL("sqlite", f"sqlite:///{DEFAULT_ADAPTER_STORE}", DEFAULT_ADAPTER_STORE)
    text = os.fspath(url)
    if "://" not in text:
        return StoreURL("sqlite", f"sqlite:///{text}", Path(text))
    try:
        return StoreURL.parse(text)
    except ValueError as exc:
        raise RegistryError(str(exc)) from None


def open_registry(
    url: str | os.PathLike[str] | StoreURL | None = None, **database_options: Any
) -> SQLAdapterRegistry:
    """Open (and migrate) the adapter store a URL names (see `store_url`); a SQLite file is created.

    Args:
        url: The store; None for `.agentrt/adapters.db`.
        database_options: For PostgreSQL: `min_size`, `max_size`, `timeout_s`.

    Raises:
        RegistryError: Not a store URL.
        StoreUnavailable: PostgreSQL cannot be reached.
        SchemaTooNew: A newer agentrt migrated the store.
    """
    database = open_database(store_url(url), **database_options)
    return SQLAdapterRegistry(database, owns_database=True)


def open_existing_registry(
    url: str | os.PathLike[str] | StoreURL | None = None, **database_options: Any
) -> SQLAdapterRegistry | None:
    """`open_registry`, or None for a SQLite file that does not exist yet (nothing was deployed)."""
    parsed = store_url(url)
    if parsed.kind == "sqlite" and parsed.path is not None and not parsed.path.exists():
        return None
    return open_registry(parsed, **database_options)


def _version(row: Row) -> AdapterVersion:
    return AdapterVersion(
        name=row["name"],
        version=int(row["version"]),
        status=VersionStatus(row["status"]),
        loaded=bool(row["loaded"]),
        path=row["path"],
        server_path=row["server_path"],
        base_url=row["base_url"],
        base_model=row["base_model"],
        digest=row["digest"],
        files=json.loads(row["files"]),
        evaluation=json.loads(row["evaluation"]) if row["evaluation"] else None,
        reason=row["reason"],
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        promoted_at=float(row["promoted_at"]) if row["promoted_at"] is not None else None,
        call_form=row["call_form"],
        similar_requests=int(row["similar_requests"]),
    )


class SQLAdapterRegistry:
    """Adapter versions in the shared store's database: thread-safe, blocking.

    Args:
        database: A SQLite or PostgreSQL `Database` (shared with other stores or not).
        clock: Wall-clock seconds; inject a fake one in tests.
        owns_database: Close the database with the registry.

    Raises:
        SchemaTooNew: A newer agentrt migrated the database.
    """

    def __init__(
        self,
        database: Database,
        *,
        clock: Callable[[], float] = time.time,
        owns_database: bool = False,
    ) -> None:
        self.database = database
        self._clock = clock
        self._owns = owns_database
        try:
            database.migrate("adapters", ADAPTER_MIGRATIONS)
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> StoreURL:
        """Where the versions live (print it: the password is redacted)."""
        return self.database.url

    def close(self) -> None:
        """Close the database if the registry owns it."""
        if self._owns:
            self.database.close()

    def __enter__(self) -> SQLAdapterRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _take_name(session: Session, name: str) -> int:
        """Lock `name`'s row for this transaction; the highest number it ever gave out."""
        session.run(
            "INSERT INTO adapter_names (name, last_version) VALUES (?, 0) "
            "ON CONFLICT (name) DO NOTHING",
            (name,),
        )
        row = session.one(
            "UPDATE adapter_names SET last_version = last_version WHERE name = ? "
            "RETURNING last_version",
            (name,),
        )
        assert row is not None
        return int(row["last_version"])

    @staticmethod
    def _event(
        session: Session, name: str, version: int, event: str, detail: str | None, now: float
    ) -> None:
        session.run(
            "INSERT INTO adapter_events (name, version, event, detail, at) VALUES (?,?,?,?,?)",
            (name, version, event, detail, now),
        )

    def _must(self, session: Session, name: str, version: int) -> Row:
        row = session.one(
            "SELECT * FROM adapter_versions WHERE name = ? AND version = ?", (name, version)
        )
        if row is None:
            raise RegistryError(f"no version {served_name(name, version)} in {self.url}")
        return row

    def reserve(
        self,
        name: str,
        *,
        path: str,
        server_path: str,
        base_url: str,
        base_model: str,
        digest: str,
        files: Mapping[str, str],
        above: int = 0,
        call_form: CallForm = "plain",
        similar_requests: int = 0,
    ) -> AdapterVersion:
        if call_form not in CALL_FORMS:
            raise RegistryError(f"call_form is one of {', '.join(CALL_FORMS)}, not {call_form!r}")
        if similar_requests < 0:
            raise RegistryError(f"similar_requests must be 0 or more, not {similar_requests}")
        now = self._clock()
        with self.database.transaction() as session:
            last = self._take_name(session, name)
            top = session.one(
                "SELECT COALESCE(MAX(version), 0) AS top FROM adapter_versions WHERE name = ?",
                (name,),
            )
            assert top is not None
            version = max(last, int(top["top"]), above) + 1
            session.run(
                "INSERT INTO adapter_versions (name, version, status, loaded, path, server_path,"
                " base_url, base_model, digest, files, created_at, updated_at, call_form,"
                " similar_requests) VALUES (?,?,?,0,?,?,?,?,?,?,?,?,?,?)",
                (name, version, VersionStatus.LOADING.value, path, server_path, base_url,
                 base_model, digest, json.dumps(dict(files), sort_keys=True), now, now,
                 call_form, similar_requests),
            )  # fmt: skip
            session.run("UPDATE adapter_names SET last_version = ? WHERE name = ?", (version, name))
            self._event(session, name, version, "reserved", digest, now)
            row = self._must(session, name, version)
        return _version(row)

    def update(
        self,
        name: str,
        version: int,
        *,
        status: VersionStatus | None = None,
        loaded: bool | None = None,
        evaluation: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> AdapterVersion:
        if status is VersionStatus.SERVING:
            raise RegistryError("a version becomes serving only through promote()")
        now = self._clock()
        with self.database.transaction() as session:
            self._take_name(session, name)  # a promotion of this version waits, or is seen
            row = self._must(session, name, version)
            if status is not None and row["status"] == VersionStatus.SERVING.value:
                raise RegistryError(
                    f"{served_name(name, version)} is serving: promote or roll back another "
                    "version instead"
                )
            fields: dict[str, Any] = {"updated_at": now}
            if status is not None:
                fields["status"] = status.value
            if loaded is not None:
                fields["loaded"] = int(loaded)
            if evaluation is not None:
                fields["evaluation"] = json.dumps(dict(evaluation), allow_nan=False)
            if reason is not None:
                fields["reason"] = reason
            assignments = ", ".join(f"{key} = ?" for key in fields)
            session.run(
                f"UPDATE adapter_versions SET {assignments} WHERE name = ? AND version = ?",
                (*fields.values(), name, version),
            )
            if status is not None:
                self._event(session, name, version, status.value, reason, now)
            if loaded is not None and bool(row["loaded"]) != loaded:
                self._event(session, name, version, "loaded" if loaded else "unloaded", None, now)
            row = self._must(session, name, version)
        return _version(row)

    def promote(
        self,
        name: str,
        version: int,
        *,
        expected: int | None,
        demote_to: VersionStatus = VersionStatus.RETIRED,
        reason: str | None = None,
    ) -> AdapterVersion:
        if demote_to not in (VersionStatus.RETIRED, VersionStatus.ROLLED_BACK):
            raise RegistryError("the serving version is demoted to retired or rolled_back")
        now = self._clock()
        with self.database.transaction() as session:
            # Once the name's row is ours, what serves cannot change until we commit.
            self._take_name(session, name)
            current = session.one(
                "SELECT version FROM adapter_versions WHERE name = ? AND status = ?",
                (name, VersionStatus.SERVING.value),
            )
            actual = int(current["version"]) if current is not None else None
            if actual != expected:
                raise ServingChanged(name, expected, actual)
            self._must(session, name, version)
            if actual is not None:
                session.run(
                    "UPDATE adapter_versions SET status = ?, updated_at = ?, reason = COALESCE(?, "
                    "reason) WHERE name = ? AND version = ?",
                    (demote_to.value, now, reason if demote_to is VersionStatus.ROLLED_BACK
                     else None, name, actual),
                )  # fmt: skip
                self._event(session, name, actual, demote_to.value, reason, now)
            session.run(
                "UPDATE adapter_versions SET status = ?, promoted_at = ?, updated_at = ? "
                "WHERE name = ? AND version = ?",
                (VersionStatus.SERVING.value, now, now, name, version),
            )
            self._event(session, name, version, "serving", reason, now)
            row = self._must(session, name, version)
        return _version(row)

    def serving(self, name: str) -> AdapterVersion | None:
        with self.database.read() as session:
            row = session.one(
                "SELECT * FROM adapter_versions WHERE name = ? AND status = ?",
                (name, VersionStatus.SERVING.value),
            )
        return _version(row) if row is not None else None

    def get(self, name: str, version: int) -> AdapterVersion | None:
        with self.database.read() as session:
            row = session.one(
                "SELECT * FROM adapter_versions WHERE name = ? AND version = ?", (name, version)
            )
        return _version(row) if row is not None else None

    def versions(self, name: str | None = None) -> list[AdapterVersion]:
        with self.database.read() as session:
            rows: Sequence[Row]
            if name is None:
                rows = session.all("SELECT * FROM adapter_versions ORDER BY name, version")
            else:
                rows = session.all(
                    "SELECT * FROM adapter_versions WHERE name = ? ORDER BY version", (name,)
                )
        return [_version(row) for row in rows]

    def history(self, name: str) -> list[dict[str, Any]]:
        with self.database.read() as session:
            rows = session.all(
                "SELECT version, event, detail, at FROM adapter_events WHERE name = ? ORDER BY id",
                (name,),
            )
        return [dict(row) for row in rows]


class SQLiteAdapterRegistry(SQLAdapterRegistry):
    """`SQLAdapterRegistry` in a SQLite file of its own (WAL, fsync at each commit).

    Args:
        path: Database file (folder created).
        clock: Wall-clock seconds; inject a fake one in tests.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        super().__init__(SQLiteDatabase(self.path), clock=clock, owns_database=True)

    def __enter__(self) -> SQLiteAdapterRegistry:
        return self
