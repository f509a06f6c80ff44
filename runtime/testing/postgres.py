"""A throwaway PostgreSQL server for tests and benchmarks: initdb + pg_ctl in a temp folder.

Uses the server binaries of the machine (Debian: `/usr/lib/postgresql/*/bin`,
or `$AGENTRT_PG_BIN`). PostgreSQL refuses to run as root, so as root the
cluster is created and run as the `postgres` user (`runuser`). Trust
authentication, 127.0.0.1 only, a free port, `fsync=off`: for tests only.

Example:
    with TemporaryPostgres() as server:
        url = server.create_database("t1")
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

__all__ = [
    "PostgresNotInstalled",
    "TemporaryPostgres",
    "create_database",
    "drop_database",
    "find_postgres_bin",
]


class PostgresNotInstalled(RuntimeError):
    """No PostgreSQL server binaries on this machine; the message says how to get them."""


def find_postgres_bin() -> Path:
    """The folder with `initdb` and `pg_ctl`.

    Raises:
        PostgresNotInstalled: Neither `$AGENTRT_PG_BIN` nor a Debian install has them.
    """
    candidates = [os.environ.get("AGENTRT_PG_BIN", "")]
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for folder in candidates:
        if folder and (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    raise PostgresNotInstalled(
        "no PostgreSQL server binaries (initdb, pg_ctl): install them (Debian: apt-get install "
        "postgresql) or set AGENTRT_PG_BIN, or point AGENTRT_TEST_POSTGRES at a running server"
    )


def create_database(server_url: str, name: str | None = None) -> str:
    """Create an empty database on the server of `server_url`; the new database's URL."""
    import psycopg

    name = name or f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # a name of hex digits: nothing to quote
    base, _, _ = server_url.partition("?")
    return base.rsplit("/", 1)[0] + f"/{name}"


def drop_database(database_url: str) -> None:
    """Drop a database `create_database` made (closing its sessions)."""
    import psycopg

    base, name = database_url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TemporaryPostgres:
    """A PostgreSQL cluster in a temporary folder, started on a free port.

    Attributes:
        url: `postgresql://agentrt@127.0.0.1:PORT/postgres` once started.
    """

    def __init__(self, *, port: int | None = None) -> None:
        self.bin = find_postgres_bin()
        self.port = port or _free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="agentrt-pg-"))
        self.data = self.folder / "data"
        self.url = f"postgresql://agentrt@127.0.0.1:{self.port}/postgres"
        self._as_postgres = os.geteuid() == 0
        self._initialised = False

    def _run(self, *command: str) -> None:
        argv = [str(self.bin / command[0]), *command[1:]]
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"{command[0]} failed ({done.returncode}): {done.stderr.strip() or done.stdout}"
            )

    def start(self) -> TemporaryPostgres:
        """initdb (once) and start the server; returns when it accepts connections."""
        if not self._initialised:
            if self._as_postgres:
                import pwd

                entry = pwd.getpwnam("postgres")
                os.chown(self.folder, entry.pw_uid, entry.pw_gid)
            self._run("initdb", "-D", str(self.data), "-U", "agentrt", "-A", "trust", "-E", "UTF8",
                      "--no-sync")  # fmt: skip
            self._initialised = True
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"),
                  "-w", "-t", "60", "start")  # fmt: skip
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (keeping its data: `start` again brings it back)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def is_running(self) -> bool:
        """True while the postmaster runs."""
        return (self.data / "postmaster.pid").exists()

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; its URL."""
        return create_database(self.url, name)

    def close(self) -> None:
        """Stop the server if it runs, and delete its folder."""
        try:
            if self._initialised and self.is_running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> TemporaryPostgres:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()
