"""`agentrt mcp serve` driven by the MCP SDK's own stdio client.

The server is the real command in a subprocess; the client is the official
SDK's `stdio_client` + `ClientSession`. Every claim is checked against what
the tool did (a marker file it writes when it runs) and the audit log.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

mcp = pytest.importorskip("mcp", reason="the MCP SDK (agent-runtime[mcp]) is not installed")

from mcp import ClientSession, StdioServerParameters, stdio_client  # noqa: E402

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
