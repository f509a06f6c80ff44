"""Who is running a claimed call right now: locks the operating system or the server drops on death.

A claimant holds its call's lock from just before the claim until the
outcome is recorded. The lock outlives nothing: when the process dies the
kernel (a `flock` on a file) or PostgreSQL (a session advisory lock on the
dead process's connection) releases it. So a call stored as `executing`
whose lock is free was interrupted; one whose lock is held is running.

- `FileClaimLocks`: `flock` on `DB.claims/ID.lock` next to a SQLite store
  (one host, the claimant's pid written in the file);
- `PostgresClaimLocks`: `pg_try_advisory_lock` on a connection of its own
  (every replica; the holder's pid and host read back from `pg_locks`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from runtime.storage.sql import PostgresDatabase

__all__ = ["ClaimLocks", "FileClaimLocks", "PostgresClaimLocks"]


class ClaimLocks(Protocol):
    """Per-call locks marking a live claimant. Thread-safe."""

    def take(self, approval_id: str) -> bool:
        """Lock the call for this process; False when another process holds it."""
        ...

    def release(self, approval_id: str, *, finished: bool) -> None:
        """Let go (`finished`: the outcome is recorded, the lock's traces may go)."""
        ...

    def holder(self, approval_id: str) -> int | None:
        """The pid of the live process holding the lock (0 if unknown), or None."""
        ...

    def wait(self, approval_id: str, timeout_s: float) -> None:
        """Block up to `timeout_s` until nobody holds the lock."""
        ...

    def close(self) -> None:
        """Drop every lock this process holds."""
        ...


class FileClaimLocks:
    """`flock`s on files in a folder (`DB.claims/`), for the SQLite store."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()

    def _path(self, approval_id: str) -> Path:
        return self._folder / f"{approval_id}.lock"

    def take(self, approval_id: str) -> bool:
        self._folder.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(self._path(approval_id), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        with self._lock:
            self._fds[approval_id] = fd
        return True

    def release(self, approval_id: str, *, finished: bool) -> None:
        with self._lock:
            self._drop(approval_id, unlink=finished)

    def _drop(self, approval_id: str, *, unlink: bool) -> None:
        fd = self._fds.pop(approval_id, None)
        if fd is None:
            return
        if unlink:  # still locked: nobody can take a lock on it between unlink and close
            with contextlib.suppress(OSError):
                self._path(approval_id).unlink()
        os.close(fd)

    def holder(self, approval_id: str) -> int | None:
        try:
            fd = os.open(self._path(approval_id), os.O_RDONLY)
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

    def wait(self, approval_id: str, timeout_s: float) -> None:
        try:
            fd = os.open(self._path(approval_id), os.O_RDONLY)
        except FileNotFoundError:
            return
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

    def close(self) -> None:
        with self._lock:
            for approval_id in list(self._fds):
                self._drop(approval_id, unlink=False)


_KEY_SQL = "hashtextextended(%s, 0)"


class PostgresClaimLocks:
    """Session advisory locks on one connection of this process's own.

    The connection is opened on the first claim and names this process in
    `application_name` (`agentrt:PID@HOST`), which `holder` reads back
    through `pg_locks`. If it breaks (the server restarted), its locks are
    gone; the next claim opens a new one.
    """

    def __init__(self, database: PostgresDatabase) -> None:
        self._db = database
        self._conn: Any = None
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._name = f"agentrt:{os.getpid()}@{socket.gethostname()}"[:63]

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = self._db.connect(application_name=self._name)
            self._held.clear()
        return self._conn

    def take(self, approval_id: str) -> bool:
        import psycopg

        with self._lock:
            if approval_id in self._held:
                return False  # held here already: a second claimant, as with a second flock
            try:
                row = (
                    self._connection()
                    .execute(f"SELECT pg_try_advisory_lock({_KEY_SQL})", (approval_id,))
                    .fetchone()
                )
            except psycopg.OperationalError as exc:
                self._conn = None
                raise self._db.unavailable(exc) from exc
            if row is None or not row[0]:
                return False
            self._held.add(approval_id)
            return True

    def release(self, approval_id: str, *, finished: bool) -> None:
        import psycopg

        with self._lock:
            if approval_id not in self._held:
                return
            self._held.discard(approval_id)
            if self._conn is None or self._conn.closed:
                return
            try:
                self._conn.execute(f"SELECT pg_advisory_unlock({_KEY_SQL})", (approval_id,))
            except psycopg.OperationalError:
                self._conn = None  # the server dropped the session, and its locks with it

    def holder(self, approval_id: str) -> int | None:
        with self._db.transaction() as session:
            row = session.one(
                "SELECT pg_try_advisory_xact_lock_shared(hashtextextended(?, 0)) AS free",
                (approval_id,),
            )
            if row is not None and row["free"]:
                return None
            found = session.one(
                "SELECT a.application_name AS name FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.mode = 'ExclusiveLock' "
                "AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(?, 0) "
                "LIMIT 1",
                (approval_id,),
            )
        name = str(found["name"]) if found is not None else ""
        pid = name.removeprefix("agentrt:").partition("@")[0]
        return int(pid) if pid.isdigit() else 0

    def wait(self, approval_id: str, timeout_s: float) -> None:
        import psycopg

        try:
            with self._db.transaction() as session:
                session.run(f"SET LOCAL lock_timeout = '{max(1, int(timeout_s * 1000))}ms'")
                session.one(
                    "SELECT pg_advisory_xact_lock_shared(hashtextextended(?, 0))", (approval_id,)
                )
        except psycopg.errors.LockNotAvailable:
            return  # still held after timeout_s: the caller reports it as running elsewhere

    def close(self) -> None:
        with self._lock:
            self._held.clear()
            if self._conn is not None and not self._conn.closed:
                self._conn.close()
            self._conn = None
