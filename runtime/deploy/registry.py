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

`AdapterRegistry` is the interface; `SQLiteAdapterRegistry` keeps it in one
SQLite file (WAL), which replicas on one host, or on a shared volume that
supports locking, agree on. Promotion is a compare-and-set on the serving
version inside one `BEGIN IMMEDIATE` transaction, so two deploys racing for
one name cannot both win. A PostgreSQL backend comes with the shared store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "DEFAULT_ADAPTER_STORE",
    "AdapterRegistry",
    "AdapterVersion",
    "RegistryError",
    "SQLiteAdapterRegistry",
    "ServingChanged",
    "VersionStatus",
    "open_registry",
    "served_name",
    "split_served_name",
    "store_path",
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

    @property
    def served_name(self) -> str:
        return served_name(self.name, self.version)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["status"] = self.status.value
        out["served_name"] = self.served_name
        return out


class AdapterRegistry(Protocol):
    """Where deployed adapter versions are recorded (SQLite here; PostgreSQL to come)."""

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


_SCHEMA = """
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
);
"""


def store_path(url: str | os.PathLike[str] | None) -> Path:
    """The SQLite file a store URL names.

    `sqlite:///rel/path` and `sqlite:////abs/path` (SQLAlchemy's spelling), a
    plain path, or None for `.agentrt/adapters.db`.

    Raises:
        RegistryError: Another kind of store (PostgreSQL comes with the shared store).
    """
    if url is None or str(url) == "":
        return DEFAULT_ADAPTER_STORE
    text = os.fspath(url)
    if text.startswith("sqlite:///"):
        rest = text[len("sqlite:///") :]
        if not rest:
            raise RegistryError("sqlite:/// needs a file path, e.g. sqlite:///.agentrt/adapters.db")
        return Path(rest)
    scheme, sep, _ = text.partition("://")
    if sep:
        if scheme.startswith("postgres"):
            raise RegistryError(
                "a PostgreSQL adapter store comes with the shared store backend, not yet in this "
                "build; use sqlite:///PATH (replicas on one host or a shared volume agree on it)"
            )
        raise RegistryError(f"unknown store {scheme}://: use sqlite:///PATH")
    return Path(text)


def open_registry(url: str | os.PathLike[str] | None = None) -> SQLiteAdapterRegistry:
    """Open the adapter store a URL names (see `store_path`)."""
    return SQLiteAdapterRegistry(store_path(url))


def _version(row: sqlite3.Row) -> AdapterVersion:
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
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        promoted_at=row["promoted_at"],
    )


class SQLiteAdapterRegistry:
    """Adapter versions in a SQLite file, shared safely by threads and processes.

    Args:
        path: Database file (folder created).
        clock: Wall-clock seconds; inject a fake one in tests.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        self._conn.row_factory = sqlite3.Row
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SQLiteAdapterRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """`BEGIN IMMEDIATE` … `COMMIT` under the lock, rolled back on error."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _event(self, name: str, version: int, event: str, detail: str | None, now: float) -> None:
        self._conn.execute(
            "INSERT INTO adapter_events (name, version, event, detail, at) VALUES (?,?,?,?,?)",
            (name, version, event, detail, now),
        )

    def _row(self, name: str, version: int) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._conn.execute(
            "SELECT * FROM adapter_versions WHERE name = ? AND version = ?", (name, version)
        ).fetchone()
        return row

    def _must(self, name: str, version: int) -> sqlite3.Row:
        row = self._row(name, version)
        if row is None:
            raise RegistryError(f"no version {served_name(name, version)} in {self.path}")
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
    ) -> AdapterVersion:
        now = self._clock()
        with self._transaction():
            (top,) = self._conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM adapter_versions WHERE name = ?", (name,)
            ).fetchone()
            version = max(int(top), above) + 1
            self._conn.execute(
                "INSERT INTO adapter_versions (name, version, status, loaded, path, server_path,"
                " base_url, base_model, digest, files, created_at, updated_at)"
                " VALUES (?,?,?,0,?,?,?,?,?,?,?,?)",
                (name, version, VersionStatus.LOADING.value, path, server_path, base_url,
                 base_model, digest, json.dumps(dict(files), sort_keys=True), now, now),
            )  # fmt: skip
            self._event(name, version, "reserved", digest, now)
            row = self._must(name, version)
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
        with self._transaction():
            row = self._must(name, version)
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
            self._conn.execute(
                f"UPDATE adapter_versions SET {assignments} WHERE name = ? AND version = ?",
                (*fields.values(), name, version),
            )
            if status is not None:
                self._event(name, version, status.value, reason, now)
            if loaded is not None and bool(row["loaded"]) != loaded:
                self._event(name, version, "loaded" if loaded else "unloaded", None, now)
            row = self._must(name, version)
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
        with self._transaction():
            current = self._conn.execute(
                "SELECT version FROM adapter_versions WHERE name = ? AND status = ?",
                (name, VersionStatus.SERVING.value),
            ).fetchone()
            actual = int(current["version"]) if current is not None else None
            if actual != expected:
                raise ServingChanged(name, expected, actual)
            self._must(name, version)
            if actual is not None:
                self._conn.execute(
                    "UPDATE adapter_versions SET status = ?, updated_at = ?, reason = COALESCE(?, "
                    "reason) WHERE name = ? AND version = ?",
                    (demote_to.value, now, reason if demote_to is VersionStatus.ROLLED_BACK
                     else None, name, actual),
                )  # fmt: skip
                self._event(name, actual, demote_to.value, reason, now)
            self._conn.execute(
                "UPDATE adapter_versions SET status = ?, promoted_at = ?, updated_at = ? "
                "WHERE name = ? AND version = ?",
                (VersionStatus.SERVING.value, now, now, name, version),
            )
            self._event(name, version, "serving", reason, now)
            row = self._must(name, version)
        return _version(row)

    def serving(self, name: str) -> AdapterVersion | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM adapter_versions WHERE name = ? AND status = ?",
                (name, VersionStatus.SERVING.value),
            ).fetchone()
        return _version(row) if row is not None else None

    def get(self, name: str, version: int) -> AdapterVersion | None:
        with self._lock:
            row = self._row(name, version)
        return _version(row) if row is not None else None

    def versions(self, name: str | None = None) -> list[AdapterVersion]:
        with self._lock:
            if name is None:
                rows = self._conn.execute(
                    "SELECT * FROM adapter_versions ORDER BY name, version"
                ).fetchall()
            else:
                rows = self._conn.execute(
                    "SELECT * FROM adapter_versions WHERE name = ? ORDER BY version", (name,)
                ).fetchall()
        return [_version(row) for row in rows]

    def history(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT version, event, detail, at FROM adapter_events WHERE name = ? ORDER BY id",
                (name,),
            ).fetchall()
        return [dict(row) for row in rows]
