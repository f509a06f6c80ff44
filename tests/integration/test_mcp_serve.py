"""`agentrt mcp serve` driven by the MCP SDK's own clients, over stdio and streamable HTTP.

The server is the real command in a subprocess; the client is the official
SDK's `stdio_client` or `streamable_http_client` + `ClientSession`. Every
claim is checked against what the tool did (a marker file it writes when it
runs) and the audit log.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

mcp = pytest.importorskip("mcp", reason="the MCP SDK (agent-runtime[mcp]) is not installed")

import httpx  # noqa: E402
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared._httpx_utils import create_mcp_http_client  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

TOOLS = '''
from pathlib import Path

from runtime import tool

MARKER = Path(__file__).with_name("ran.txt")


@tool
def note(text: str) -> str:
    """Append a note (writes a marker file, so a test can see that it ran).

    Args:
        text: What to write.
    """
    with MARKER.open("a") as handle:
        handle.write(text + "\\n")
    return "noted " + text


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: First.
        b: Second.
    """
    return a + b


@tool
def wipe(path: str) -> str:
    """Delete a path (the policy denies it).

    Args:
        path: What to delete.
    """
    with MARKER.open("a") as handle:
        handle.write("WIPED " + path + "\\n")
    return "wiped"


@tool
def pay(amount: int) -> str:
    """Pay someone (needs a human's approval).

    Args:
        amount: How much.
    """
    with MARKER.open("a") as handle:
        handle.write(f"PAID {amount}\\n")
    return "paid"
'''

POLICY = """
apiVersion: agentrt/v1
kind: ToolPolicy
metadata:
  id: mcp-serve-test
scope: {tenants: ["acme"]}
rules:
  - id: allow-note-add
    effect: allow
    tools: [note, add]
  - id: approve-pay
    effect: require_approval
    tools: [pay]
    reason: Payments need a human.
  - id: deny-wipe
    effect: deny
    tools: [wipe]
    reason: Nothing is wiped by an agent.
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "served_tools.py").write_text(TOOLS)
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "test.yaml").write_text(POLICY)
    return tmp_path


@asynccontextmanager
async def served(workdir: Path, *extra: str) -> AsyncIterator[ClientSession]:
    command = [
        "-m", "runtime", "mcp", "serve",
        "--module", str(workdir / "served_tools.py"),
        "--policy", str(workdir / "policy"),
        "--audit-log", str(workdir / "audit.jsonl"),
        "--approvals-db", str(workdir / "approvals.db"),
        "--tenant", "acme", "--agent", "mcp-client",
        *extra,
    ]  # fmt: skip
    params = StdioServerParameters(
        command=sys.executable,
        args=command,
        env={"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "")},
        cwd=str(workdir),
    )
    with (workdir / "server-stderr.txt").open("w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


def audit(workdir: Path) -> list[dict[str, Any]]:
    lines = (workdir / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def records_for(workdir: Path, tool: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for record in audit(workdir):
        fields = record.get("fields", record)
        if fields.get("gen_ai.tool.name") == tool:
            out.append((record["event"], fields))
    return out


def ran(workdir: Path) -> list[str]:
    marker = workdir / "ran.txt"
    return marker.read_text().splitlines() if marker.exists() else []


def text_of(result: Any) -> str:
    return "".join(block.text for block in result.content if block.type == "text")


async def test_inprocess_allowed_invalid_denied_and_pending(workdir: Path) -> None:
    async with served(workdir, "--sandbox", "inprocess") as session:
        listed = await session.list_tools()
        by_name = {item.name: item for item in listed.tools}
        assert set(by_name) == {"note", "add", "wipe", "pay"}
        assert by_name["add"].input_schema["required"] == ["a", "b"]

        ok = await session.call_tool("note", {"text": "hello"})
        assert not ok.is_error, text_of(ok)
        assert json.loads(text_of(ok)) == "noted hello"

        invalid = await session.call_tool("note", {"text": 5})
        assert invalid.is_error
        assert text_of(invalid).startswith("invalid_arguments:")
        assert "$.text" in text_of(invalid) and "did not run" in text_of(invalid)

        denied = await session.call_tool("wipe", {"path": "/"})
        assert denied.is_error
        assert "Nothing is wiped by an agent" in text_of(denied)

        pending = await session.call_tool("pay", {"amount": 5})
        assert pending.is_error
        assert text_of(pending).startswith("pending_approval:")
        approval_id = pending.structured_content["approval_id"]
        assert f"approval id {approval_id}" in text_of(pending)

        unknown = await session.call_tool("nope", {})
        assert unknown.is_error and text_of(unknown).startswith("unknown_tool:")

    # Only the allowed call ran; the refused ones never reached the tool.
    assert ran(workdir) == ["hello"]
    statuses = {
        tool: [f["agentrt.status"] for e, f in records_for(workdir, tool) if "agentrt.status" in f]
        for tool in ("note", "wipe", "pay", "nope")
    }
    assert statuses == {
        "note": ["ok", "invalid_arguments"],
        "wipe": ["denied"],
        "pay": ["pending_approval"],
        "nope": ["unknown_tool"],
    }
    events = {e for e, _ in records_for(workdir, "wipe")} | {
        e for e, _ in records_for(workdir, "pay")
    }
    assert "execution.started" not in events
    tenants = {f.get("agentrt.tenant") for _, f in records_for(workdir, "note")}
    assert tenants == {"acme"}


async def test_tenant_outside_the_policy_scope_is_denied(workdir: Path) -> None:
    async with served(workdir, "--sandbox", "inprocess", "--tenant", "globex") as session:
        result = await session.call_tool("note", {"text": "hi"})
    assert result.is_error and text_of(result).startswith("denied:")
    assert ran(workdir) == []


@pytest.mark.docker
async def test_docker_sandbox_runs_the_allowed_call(workdir: Path) -> None:
    async with served(workdir, "--sandbox", "docker") as session:
        ok = await session.call_tool("add", {"a": 2, "b": 40})
        denied = await session.call_tool("wipe", {"path": "/etc"})
    assert not ok.is_error, text_of(ok)
    assert json.loads(text_of(ok)) == 42
    assert denied.is_error and "denied" in text_of(denied)
    finished = [f for e, f in records_for(workdir, "add") if e == "execution.finished"]
    assert finished[0]["agentrt.sandbox.container_id"]  # it ran in a container
    assert finished[0]["agentrt.status"] == "ok"
    assert "execution.started" not in {e for e, _ in records_for(workdir, "wipe")}


# -- streamable HTTP, bearer tokens -------------------------------------------

ACME_TOKEN = "acme-token-Qm9vZ2llV29vZ2llMTIz"
GLOBEX_TOKEN = "globex-token-U25lYWt5U25lYWt5NDU2"
WRONG_TOKEN = "acme-token-Qm9vZ2llV29vZ2llMTI0"  # one character off


@asynccontextmanager
async def http_served(workdir: Path) -> AsyncIterator[str]:
    """`agentrt mcp serve --transport http` on a free port; yields its URL, stops it with SIGTERM."""
    (workdir / "tokens.yaml").write_text(
        f'tokens:\n  - token: "{ACME_TOKEN}"\n    tenant: acme\n    agent: http-bot\n'
        f'  - token: "{GLOBEX_TOKEN}"\n    tenant: globex\n'
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runtime", "mcp", "serve", "--transport", "http", "--port", "0",
        "--tokens", str(workdir / "tokens.yaml"),
        "--module", str(workdir / "served_tools.py"),
        "--policy", str(workdir / "policy"),
        "--audit-log", str(workdir / "audit.jsonl"),
        "--approvals-db", str(workdir / "approvals.db"),
        "--sandbox", "inprocess",
        cwd=workdir,
        env={"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "")},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(60):
            while "serving MCP" not in (line := (await process.stderr.readline()).decode()):
                assert line, f"the server exited before listening: {''.join(seen)}"
                seen.append(line)
        url = line.rsplit(" ", 1)[-1].strip()
        # keep reading stderr so the server never blocks on a full pipe
        rest = asyncio.create_task(process.stderr.read())
        try:
            yield url
        finally:
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(60):
                code = await process.wait()
                seen.append(line + (await rest).decode())
            (workdir / "server-stderr.txt").write_text("".join(seen))
        assert code == 0, "".join(seen)  # stopped cleanly, the audit log closed
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@asynccontextmanager
async def http_session(url: str, token: str | None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    client = create_mcp_http_client(headers=headers)
    async with (
        client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def test_http_allowed_invalid_denied_and_pending(workdir: Path) -> None:
    async with http_served(workdir) as url, http_session(url, ACME_TOKEN) as session:
        listed = await session.list_tools()
        assert {item.name for item in listed.tools} == {"note", "add", "wipe", "pay"}

        ok = await session.call_tool("note", {"text": "over http"})
        assert not ok.is_error, text_of(ok)
        assert json.loads(text_of(ok)) == "noted over http"

        invalid = await session.call_tool("note", {"text": ["not", "a", "string"]})
        assert invalid.is_error and text_of(invalid).startswith("invalid_arguments:")

        denied = await session.call_tool("wipe", {"path": "/"})
        assert denied.is_error and "Nothing is wiped by an agent" in text_of(denied)

        pending = await session.call_tool("pay", {"amount": 7})
        assert pending.is_error and text_of(pending).startswith("pending_approval:")

    assert ran(workdir) == ["over http"]  # the refused calls never reached the tool
    note = [f for e, f in records_for(workdir, "note") if "agentrt.status" in f]
    assert [f["agentrt.status"] for f in note] == ["ok", "invalid_arguments"]
    assert {(f["agentrt.tenant"], f.get("gen_ai.agent.name")) for f in note} == {
        ("acme", "http-bot")
    }
    assert "execution.started" not in {e for e, _ in records_for(workdir, "wipe")}
    assert "execution.started" not in {e for e, _ in records_for(workdir, "pay")}
    # tokens go nowhere: not the audit log, not the server's output
    for text in (
        (workdir / "audit.jsonl").read_text(),
        (workdir / "server-stderr.txt").read_text(),
    ):
        assert ACME_TOKEN not in text and GLOBEX_TOKEN not in text


async def test_http_the_token_decides_the_tenant(workdir: Path) -> None:
    async with http_served(workdir) as url:
        async with http_session(url, GLOBEX_TOKEN) as session:
            outside = await session.call_tool("note", {"text": "from globex"})
        async with http_session(url, ACME_TOKEN) as session:
            inside = await session.call_tool("note", {"text": "from acme"})
    # the policy is scoped to acme: globex's call falls to the default deny
    assert outside.is_error and text_of(outside).startswith("denied:")
    assert not inside.is_error, text_of(inside)
    assert ran(workdir) == ["from acme"]
    tenants = [
        (f["agentrt.tenant"], f["agentrt.status"])
        for _, f in records_for(workdir, "note")
        if "agentrt.status" in f
    ]
    assert tenants == [("globex", "denied"), ("acme", "ok")]


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


async def test_http_requests_without_a_valid_token_are_refused(workdir: Path) -> None:
    async with http_served(workdir) as url:
        async with httpx.AsyncClient(timeout=30) as raw:
            for authorization in (None, f"Bearer {WRONG_TOKEN}", f"Basic {ACME_TOKEN}", "Bearer"):
                headers = dict(MCP_HEADERS)
                if authorization is not None:
                    headers["Authorization"] = authorization
                refused = await raw.post(url, json=INITIALIZE, headers=headers)
                assert refused.status_code == 401, authorization
                assert refused.headers["www-authenticate"].startswith("Bearer")
                assert "bearer token is required" in refused.json()["error"]["message"]

            # a session belongs to the token that opened it: another token cannot use it
            opened = await raw.post(
                url,
                json=INITIALIZE,
                headers={**MCP_HEADERS, "Authorization": f"Bearer {ACME_TOKEN}"},
            )
            assert opened.status_code == 200
            session_id = opened.headers["mcp-session-id"]
            call = {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "note", "arguments": {"text": "hijacked"}},
            }
            hijack = await raw.post(
                url,
                json=call,
                headers={
                    **MCP_HEADERS,
                    "Authorization": f"Bearer {GLOBEX_TOKEN}",
                    "Mcp-Session-Id": session_id,
                    "Mcp-Protocol-Version": "2025-06-18",
                },
            )
            assert hijack.status_code == 404

        # the SDK's own client, with a wrong token or none, is refused at initialize
        for token in (WRONG_TOKEN, None):
            with pytest.RaisesGroup(
                pytest.RaisesExc(MCPError, match="bearer token is required"),
                flatten_subgroups=True,
            ):
                async with http_session(url, token):
                    pass
    assert ran(workdir) == []
    stderr = (workdir / "server-stderr.txt").read_text()
    assert "unknown bearer token" in stderr and "no bearer token" in stderr
    assert WRONG_TOKEN not in stderr and ACME_TOKEN not in stderr


def test_http_needs_a_port_and_a_tokens_file_and_takes_no_tenant(workdir: Path) -> None:
    def serve(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "runtime", "mcp", "serve", "--module", "tools", *extra],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=120,
            check=False,
        )

    (workdir / "tokens.yaml").write_text(
        f'tokens:\n  - token: "{ACME_TOKEN}"\n    tenant: acme\n'
        f'  - token: "{ACME_TOKEN}"\n    tenant: globex\n'
    )
    tokens = str(workdir / "tokens.yaml")
    for extra, expected in (
        (("--transport", "http", "--tokens", tokens), "needs --port"),
        (("--transport", "http", "--port", "0"), "needs --tokens FILE"),
        (("--transport", "http", "--port", "0", "--tokens", tokens, "--tenant", "x"), "--tenant"),
        (("--transport", "http", "--port", "0", "--tokens", tokens), "same token as tokens[0]"),
        (("--tokens", tokens), "are for --transport http"),
    ):
        done = serve(*extra)
        assert done.returncode == 2, done.stderr
        assert expected in done.stderr
        assert ACME_TOKEN not in done.stderr
