"""Real `agentrt serve` processes for the service tests, and the scripted model they talk to.

The scripted model reads the user's request: `refund ORDER AMOUNT [CARD]`
proposes `issue_refund`, `slow ORDER AMOUNT` proposes `slow_refund`,
`lookup ORDER` proposes `lookup`; after a tool result it answers
`done: <result>`. Each replica is a separate process
(`runtime.testing.service.ServiceProcess`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from runtime.testing import ScriptedReply, ScriptedServer
from runtime.testing.service import ServiceProcess

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
    """One `agentrt serve` process with the test tools, policy and tokens."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        *,
        store: str,
        model: ScriptedServer | None,
        ledger: Path,
        extra: tuple[str, ...] = (),
        model_name: str | None = None,
        policy: Path = POLICY,
    ) -> None:
        self.workdir = workdir
        self.name = name
        self.model = model
        self.ledger = ledger
        self.log = workdir / f"{name}.log"
        self.audit_log = workdir / name / "audit.jsonl"
        tokens = write_tokens(workdir / "tokens.yaml")
        args = [
            "--module", str(TOOLS), "--policy", str(policy), "--store", store,
            "--tokens", str(tokens), "--sandbox", "inprocess",
            "--audit-log", str(self.audit_log), "--replica", name,
            "--log-level", "warning", *extra,
        ]  # fmt: skip
        if model is not None:
            args += ["--base-url", model.base_url, "--model", model_name or model.model]
        env = {
            "AGENTRT_TEST_LEDGER": str(ledger),
            "AGENTRT_STORE": "",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        self.process = ServiceProcess(args, cwd=workdir, log=self.log, env=env)

    @property
    def url(self) -> str:
        return self.process.url

    def start(self) -> Replica:
        self.process.start()
        return self

    def client(self, token: str | None = ACME, **options: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(options.pop("headers", {}))
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **options)

    def kill(self) -> None:
        """`kill -9`: no shutdown, no cleanup."""
        self.process.kill()

    def stop(self) -> None:
        self.process.stop()


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
