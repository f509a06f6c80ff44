"""Real `agentrt serve` processes for the service tests, and the scripted model they talk to.

The scripted model reads the user's request: `refund ORDER AMOUNT [CARD]`
proposes `issue_refund`, `slow ORDER AMOUNT` proposes `slow_refund`,
`lookup ORDER` proposes `lookup`; after a tool result it answers
`done: <result>`. Each replica is a separate process started with
`python -m runtime serve --port 0`; its "listening on" line says it is up.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from runtime.testing import ScriptedReply, ScriptedServer

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
TOOLS = FIXTURES / "service_tools.py"
POLICY = FIXTURES / "service_policy"

ACME = "acme-token-0123456789"
GLOBEX = "globex-token-0123456789"
EXPIRED = "acme-expired-token-0123"


def model_reply(body: dict[str, Any]) -> ScriptedReply:
    """The scripted model's reply to one chat-completions request."""
    last = body["messages"][-1]
    if last["role"] == "tool":
        return ScriptedReply.message(f"done: {last['content']}")
    words = str(last["content"]).split()
    if words[:1] == ["refund"]:
        args: dict[str, Any] = {"order_id": words[1], "amount": float(words[2])}
        if len(words) > 3:
            args["card_number"] = words[3]
        return ScriptedReply.call("issue_refund", args)
    if words[:1] == ["slow"]:
        return ScriptedReply.call("slow_refund", {"order_id": words[1], "amount": float(words[2])})
    if words[:1] == ["lookup"]:
        return ScriptedReply.call("lookup", {"order_id": words[1]})
    return ScriptedReply.message("hello")


def write_tokens(path: Path) -> Path:
    path.write_text(
        "tokens:\n"
        f"  - {{token: {ACME}, tenant: acme, name: alice}}\n"
        f"  - {{token: {GLOBEX}, tenant: globex}}\n"
        f'  - {{token: {EXPIRED}, tenant: acme, expires: "2020-01-01T00:00:00Z"}}\n'
    )
    return path


class Replica:
    """One `agentrt serve` process."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        *,
        store: str,
        model: ScriptedServer | None,
        ledger: Path,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.name = name
        self.store = store
        self.model = model
        self.ledger = ledger
        self.extra = extra
        self.log = workdir / f"{name}.log"
        self.audit_log = workdir / name / "audit.jsonl"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout_s: float = 60) -> Replica:
        tokens = write_tokens(self.workdir / "tokens.yaml")
        argv = [
            sys.executable, "-m", "runtime", "serve",
            "--module", str(TOOLS), "--policy", str(POLICY), "--store", self.store,
            "--tokens", str(tokens), "--port", "0", "--sandbox", "inprocess",
            "--audit-log", str(self.audit_log), "--replica", self.name,
            "--log-level", "warning", *self.extra,
        ]  # fmt: skip
        if self.model is not None:
            argv += ["--base-url", self.model.base_url, "--model", self.model.model]
        env = {
            **os.environ,
            "AGENTRT_TEST_LEDGER": str(self.ledger),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        env.pop("AGENTRT_STORE", None)
        self.proc = subprocess.Popen(
            argv, cwd=self.workdir, env=env, stdout=subprocess.PIPE, stderr=self.log.open("wb")
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        line = b""
        while b"listening on" not in line:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
            if not ready:
                raise RuntimeError(f"replica {self.name} did not start: {self.log.read_text()}")
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"replica {self.name} exited: {self.log.read_text()}")
        self.url = line.decode().strip().rsplit(" ", 1)[-1]
        return self

    def client(self, token: str | None = ACME, **options: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(options.pop("headers", {}))
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **options)

    def kill(self) -> None:
        """`kill -9`: no shutdown, no cleanup."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@contextlib.contextmanager
def replicas(
    workdir: Path, store: str, names: tuple[str, ...], ledger: Path, **options: Any
) -> Iterator[list[Replica]]:
    """Start one scripted model and a replica per name; stop them all afterwards."""
    with ScriptedServer(handler=model_reply) as model:
        started: list[Replica] = []
        try:
            for name in names:
                (workdir / name).mkdir(exist_ok=True)
                started.append(
                    Replica(workdir, name, store=store, model=model, ledger=ledger, **options)
                )
            for replica in started:
                replica.start()
            yield started
        finally:
            for replica in started:
                replica.stop()


def ledger_lines(ledger: Path) -> list[str]:
    return ledger.read_text().splitlines() if ledger.exists() else []


def sse_events(client: httpx.Client, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Parse a server-sent event stream into (event name, data) pairs as they arrive."""
    with client.stream("GET", path, timeout=httpx.Timeout(60, read=120)) as response:
        response.raise_for_status()
        name, data = "message", ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif not line and data:
                yield name, json.loads(data)
                name, data = "message", ""
