"""`agentrt serve --mcp FILE` and `agentrt demo --mcp FILE`: MCP servers' pinned tools in runs.

The MCP server is real (`tests/fixtures/mcp/http_server.py`, the SDK's server
over streamable HTTP in a subprocess, wanting an `X-Api-Key` header that the
servers file takes from the environment), pinned with `agentrt mcp pin`; the
service is a real `agentrt serve` process whose scripted model calls the
server's tools by their `SERVER.TOOL` names through POST /v1/runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the MCP SDK (agent-runtime[mcp]) is not installed")

from runtime.cli import main
from runtime.testing import ScriptedReply, ScriptedServer
from tests.service_support import Replica

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "mcp" / "http_server.py"
KEY_VARIABLE = "AGENTRT_TEST_GLOSSARY_KEY"

POLICY = """\
apiVersion: agentrt/v1
kind: ToolPolicy
metadata: {id: serve-mcp-test}
rules:
  - {id: allow-lookup, effect: allow, tools: [glossary.lookup]}
  - id: deny-purge
    effect: deny
    tools: [glossary.purge]
    reason: Nothing is purged through a remote server.
"""


def glossary_model(body: dict[str, Any]) -> ScriptedReply:
    """`define TERM` calls glossary.lookup, `purge SCOPE` glossary.purge; then it answers."""
    last = body["messages"][-1]
    if last["role"] == "tool":
        return ScriptedReply.message(f"done: {last['content']}")
    verb, _, word = str(last["content"]).partition(" ")
    if verb == "define":
        return ScriptedReply.call("glossary.lookup", {"term": word})
    if verb == "purge":
        return ScriptedReply.call("glossary.purge", {"scope": word})
    return ScriptedReply.message("hello")


@contextlib.contextmanager
def glossary_server(calls_log: Path) -> Iterator[tuple[str, str]]:
    """The fixture server on a free port: yields (its URL, the key it wants)."""
    key = secrets.token_urlsafe(24)
    process = subprocess.Popen(
        [sys.executable, str(FIXTURE), str(calls_log)],
        env={**os.environ, "FIXTURE_API_KEY": key},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        ready, _, _ = select.select([process.stdout], [], [], 60)
        url = process.stdout.readline().decode().strip() if ready else ""
        assert url.startswith("http://"), "the fixture server did not start"
        yield url, key
    finally:
        process.terminate()
        process.wait(30)


def servers_file(folder: Path, url: str) -> Path:
    config = folder / "mcp.yaml"
    config.write_text(
        f"version: 1\nservers:\n  glossary:\n    transport: http\n    url: {url}\n"
        f"    headers_from_env: {{X-Api-Key: {KEY_VARIABLE}}}\n    call_timeout_s: 20\n"
    )
    return config


def test_serve_runs_call_pinned_mcp_tools_through_the_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls_log = tmp_path / "calls.log"
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "mcp.yaml").write_text(POLICY)
    (tmp_path / "a").mkdir()
    with glossary_server(calls_log) as (url, key), ScriptedServer(handler=glossary_model) as model:
        config = servers_file(tmp_path, url)
        monkeypatch.setenv(KEY_VARIABLE, key)  # the replica inherits it
        assert main(["mcp", "pin", str(config)]) == 0, capsys.readouterr().err
        calls_log.unlink()
        replica = Replica(
            tmp_path, "a", store=f"sqlite:///{tmp_path}/state.db", model=model,
            ledger=tmp_path / "ledger", policy=policy, extra=("--mcp", str(config)),
        ).start()  # fmt: skip
        try:
            assert not calls_log.exists()  # offered from the lock: not started yet
            with replica.client() as client:
                found = client.post("/v1/runs", json={"input": "define pin"}).json()
                denied = client.post("/v1/runs", json={"input": "purge everything"}).json()
        finally:
            replica.stop()
        # Shut down cleanly: the stack closed (MCP sessions too) and signed the log's end.
        assert "Traceback" not in replica.log.read_text()
        assert main(["audit", "verify", str(replica.audit_log)]) == 0
    assert found["status"] == "completed", found
    assert [(c["tool"], c["status"]) for c in found["tool_calls"]] == [("glossary.lookup", "ok")]
    assert found["tool_calls"][0]["result"]["definition"] == "pin: a word the glossary knows"
    assert [(c["tool"], c["status"]) for c in denied["tool_calls"]] == [
        ("glossary.purge", "denied")
    ]
    assert "Nothing is purged" in denied["output"]  # the model was told why
    calls = [line for line in calls_log.read_text().splitlines() if not line.startswith("request")]
    assert calls == ["lookup pin"]  # the denied call never left the runtime
    records = [json.loads(line)["fields"] for line in replica.audit_log.read_text().splitlines()]
    servers = {r.get("agentrt.mcp.server") for r in records if r.get("gen_ai.tool.name")}
    assert servers == {"glossary"}
    assert key not in replica.audit_log.read_text() + replica.log.read_text()


def test_demo_takes_an_mcp_servers_file(tmp_path: Path) -> None:
    def demo(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "runtime", "demo", "--scripted", "--sandbox", "inprocess",
             "--audit-log", "none", "--json", *extra],
            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
            text=True, timeout=300, check=False,
        )  # fmt: skip

    missing = demo("--mcp", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "agentrt: error:" in missing.stderr and "nope.yaml" in missing.stderr
    # A server never pinned offers nothing and is not started; the demo says so, and runs.
    unpinned = demo("--mcp", str(servers_file(tmp_path, "http://127.0.0.1:9/mcp")))
    assert unpinned.returncode == 0, unpinned.stderr
    assert "MCP server 'glossary' has no pinned tools" in unpinned.stderr
