"""A remote MCP server over streamable HTTP, consumed through the servers file.

The server is real (`tests/fixtures/mcp/http_server.py`, the SDK's
`MCPServer` under uvicorn, in a subprocess on a free port) and refuses any
request without the right `X-Api-Key`. The servers file names only the
environment variable that holds the key; the key itself must never reach the
file, the lock or the audit log.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the MCP SDK (agent-runtime[mcp]) is not installed")

from runtime.calls import CallContext, CallStatus, ToolCallRequest
from runtime.stack import Stack, build_stack

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "mcp" / "http_server.py"
KEY_VARIABLE = "AGENTRT_TEST_GLOSSARY_KEY"

POLICY = """
apiVersion: agentrt/v1
kind: ToolPolicy
metadata:
  id: mcp-http-test
rules:
  - id: allow-lookup
    effect: allow
    tools: [glossary.lookup]
  - id: deny-purge
    effect: deny
    tools: [glossary.purge]
    reason: Nothing is purged through a remote server.
"""


@pytest.fixture
async def remote(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """The fixture server on a free port: yields (url, the key it wants)."""
    key = secrets.token_urlsafe(24)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(FIXTURE),
        str(tmp_path / "calls.log"),
        env={**os.environ, "FIXTURE_API_KEY": key},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(60):
            url = (await process.stdout.readline()).decode().strip()
        assert url.startswith("http://"), "the fixture server did not start"
        yield url, key
    finally:
        process.terminate()
        async with asyncio.timeout(30):
            await process.wait()


def write_files(tmp_path: Path, url: str) -> Path:
    policy = tmp_path / "policy"
    policy.mkdir(exist_ok=True)
    (policy / "test.yaml").write_text(POLICY)
    config = tmp_path / "mcp.yaml"
    config.write_text(
        f"version: 1\n"
        f"servers:\n"
        f"  glossary:\n"
        f"    transport: http\n"
        f"    url: {url}\n"
        f"    headers_from_env: {{X-Api-Key: {KEY_VARIABLE}}}\n"
        f"    call_timeout_s: 20\n"
    )
    return config


def agentrt(*args: str, key: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != KEY_VARIABLE}
    if key is not None:
        env[KEY_VARIABLE] = key
    return subprocess.run(
        [sys.executable, "-m", "runtime", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=False,
    )


def opened(tmp_path: Path, config: Path) -> Stack:
    return build_stack(
        "tools",
        policy=tmp_path / "policy",
        sandbox="inprocess",
        audit_log=tmp_path / "audit.jsonl",
        approvals_db=tmp_path / "approvals.db",
        mcp=config,
    )


async def call(stack: Stack, tool: str, arguments: dict[str, Any]) -> Any:
    request = ToolCallRequest(
        id=f"c-{secrets.token_hex(4)}", name=tool, arguments=json.dumps(arguments)
    )
    return await stack.pipeline().process(request, CallContext(run_id=request.id))


def server_log(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def calls_seen(tmp_path: Path) -> list[str]:
    return [line for line in server_log(tmp_path) if not line.startswith("request ")]


async def test_list_call_and_deny_through_the_servers_file(
    tmp_path: Path, remote: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, key = remote
    config = write_files(tmp_path, url)

    # the header comes from the environment: without it, nothing is listed
    unset = agentrt("mcp", "diff", str(config), key=None)
    assert unset.returncode == 1
    assert f"environment variable {KEY_VARIABLE} (header X-Api-Key) is not set" in unset.stdout

    pinned = agentrt("mcp", "pin", str(config), key=key)
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert "pinned glossary.lookup" in pinned.stdout

    monkeypatch.setenv(KEY_VARIABLE, key)
    (tmp_path / "calls.log").unlink()
    stack = opened(tmp_path, config)
    try:
        reports = await stack.open()
        assert {r.server_id: r.error for r in reports} == {"glossary": None}
        assert {"glossary.lookup", "glossary.purge"} <= set(stack.registry.names)
        assert server_log(tmp_path) == []  # offered from the lock: not one request yet

        found = await call(stack, "glossary.lookup", {"term": "pin"})
        assert found.status is CallStatus.OK, found.error
        assert found.result["definition"] == "pin: a word the glossary knows"
        assert found.execution.sandbox["mode"] == "mcp-http"

        invalid = await call(stack, "glossary.lookup", {"term": 3})
        assert invalid.status is CallStatus.INVALID_ARGUMENTS

        denied = await call(stack, "glossary.purge", {"scope": "everything"})
        assert denied.status is CallStatus.DENIED
        assert "Nothing is purged" in denied.error.message
    finally:
        await stack.aclose()

    assert calls_seen(tmp_path) == ["lookup pin"]  # the refused calls never left the runtime
    assert server_log(tmp_path)[0] == "request POST"  # the session opened at the first call
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    finished = [
        r["fields"]
        for r in records
        if r["fields"].get("gen_ai.tool.call.id") == found.request.id
        and "agentrt.status" in r["fields"]
    ]
    assert finished[-1]["agentrt.mcp.server"] == "glossary"
    for written in (config, tmp_path / "mcp.lock", tmp_path / "audit.jsonl"):
        assert key not in written.read_text(), f"the header value leaked into {written.name}"
    assert key not in pinned.stdout + pinned.stderr


async def test_a_wrong_header_value_fails_the_call_and_says_why(
    tmp_path: Path, remote: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, key = remote
    config = write_files(tmp_path, url)
    assert agentrt("mcp", "pin", str(config), key=key).returncode == 0
    wrong = secrets.token_urlsafe(24)
    monkeypatch.setenv(KEY_VARIABLE, wrong)
    stack = opened(tmp_path, config)
    try:
        reports = await stack.open()
        assert reports[0].error is None  # offered from the lock; the server is reached later
        refused = await call(stack, "glossary.lookup", {"term": "pin"})
    finally:
        await stack.aclose()
    assert refused.status is CallStatus.SANDBOX_ERROR
    assert refused.error.type == "mcp_start_failed"
    assert "could not be started" in refused.error.message
    assert calls_seen(tmp_path) == []
    assert wrong not in (tmp_path / "audit.jsonl").read_text()
    assert wrong not in refused.error.message


async def test_a_server_never_pinned_is_not_started(
    tmp_path: Path, remote: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, key = remote
    config = write_files(tmp_path, url)
    monkeypatch.setenv(KEY_VARIABLE, key)
    stack = opened(tmp_path, config)
    try:
        reports = await stack.open()
        refused = await call(stack, "glossary.lookup", {"term": "pin"})
    finally:
        await stack.aclose()
    assert reports[0].error is not None and "has no pinned tools" in reports[0].error
    assert "agentrt mcp pin" in reports[0].error
    assert refused.status is CallStatus.UNKNOWN_TOOL
    assert server_log(tmp_path) == []  # unreviewed tools are never reached
