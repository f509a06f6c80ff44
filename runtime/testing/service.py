"""An `agentrt serve` replica as a child process, for tests and benchmarks.

It is started with `--port 0`; the line it prints once it listens
(`agentrt serve: listening on http://HOST:PORT`) is awaited with `select`
(no polling) and gives its URL.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["ServiceProcess"]


class ServiceProcess:
    """One `python -m runtime serve ... --port 0` process.

    Args:
        args: The `serve` arguments (without `--port`).
        cwd: Its working directory.
        log: Where its stderr goes.
        env: Extra environment variables.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        cwd: Path,
        log: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.args = list(args)
        self.cwd = cwd
        self.log = log
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout_s: float = 60) -> ServiceProcess:
        """Start it; return once it listens.

        Raises:
            RuntimeError: It exited or did not listen within `timeout_s` (its log attached).
        """
        argv = [sys.executable, "-m", "runtime", "serve", *self.args, "--port", "0"]
        env = {**os.environ, **self.env}
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, cwd=self.cwd, env=env, stdout=subprocess.PIPE, stderr=log
            )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        line = b""
        while b"listening on" not in line:
            ready, _, _ = select.select(
                [self.proc.stdout], [], [], max(deadline - time.monotonic(), 0)
            )
            if not ready:
                self.kill()
                raise RuntimeError(f"agentrt serve did not start: {self.log.read_text()[-2000:]}")
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"agentrt serve exited: {self.log.read_text()[-2000:]}")
        self.url = line.decode().strip().rsplit(" ", 1)[-1]
        return self

    def kill(self) -> None:
        """`kill -9`: no shutdown, no cleanup."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        """SIGTERM (graceful: runs in flight finish), then SIGKILL after 30 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
