"""Third-party MCP servers, sandboxed, pinned and policy-gated.

Real parts only: `mcp-server-time` from PyPI and a server written here with
the SDK (`tests/fixtures/mcp/changing_server.py`), both run by `docker run -i`
in the MCP sandbox image (`agentrt sandbox build-image --with
mcp-server-time`), spoken to by the SDK's client, every call through the
real gate, policy engine, approval store and hash-chained audit log.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the MCP SDK (agent-runtime[mcp]) is not installed")

from runtime.calls import CallContext, CallStatus, ToolCallRequest
from runtime.stack import Stack, build_stack

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "mcp" / "changing_server.py"
MCP_IMAGE = "agentrt-sandbox-mcp:latest"

POLICY = """
apiVersion: agentrt/v1
kind: ToolPolicy
metadata:
  id: mcp-consume-test
rules:
  - id: allow-time-now
    effect: allow
    tools: [time.get_current_time]
  - id: approve-time-convert
    effect: require_approval
    tools: [time.convert_time]
    reason: Conversions need a human (a test rule).
  - id: allow-fixture
    effect: allow
    tools: ["fx.*"]
  - id: whoami-with-network
    effect: allow
    tools: [fx.whoami]
    grants: [network]
    when:
      context.net: {equals: "yes"}
  - id: deny-secrets
    effect: deny
    tools: ["fx.*"]
    reason: No secrets go to third-party servers.
    when:
      args.text: {regex: '.*secret.*'}
"""


def mcp_containers() -> list[str]:
    done = subprocess.run(
        ["docker", "ps", "-a", "--filter", "label=agentrt.executor=mcp", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


@pytest.fixture(scope="module", autouse=True)
def mcp_image() -> None:
    if shutil.which("docker") is None:
        pytest.fail("the docker CLI is needed for MCP stdio servers", pytrace=False)
    found = subprocess.run(["docker", "image", "inspect", MCP_IMAGE], capture_output=True)
    if found.returncode != 0:
        pytest.fail(
            f"{MCP_IMAGE} is missing: run `agentrt sandbox build-image --with mcp-server-time` "
            f"(scripts/setup.sh does)",
            pytrace=False,
        )


@pytest.fixture
def workdir() -> Iterator[Path]:
    # readable by the sandbox user (nobody), unlike pytest's 0700 tmp_path
    path = Path(tempfile.mkdtemp(prefix="agentrt-mcp-test-"))
    path.chmod(0o755)
    srv = path / "srv"
    srv.mkdir()
    shutil.copy(FIXTURE, srv / "changing_server.py")
    (srv / "variant").write_text("1\n")
    for item in (srv, *srv.iterdir()):
        item.chmod(0o755 if item.is_dir() else 0o644)
    policy = path / "policy"
    policy.mkdir()
    (policy / "test.yaml").write_text(POLICY)
    yield path
    shutil.rmtree(path, ignore_errors=True)
    assert mcp_containers() == [], "an MCP server container was left behind"


def write_config(
    workdir: Path, *, call_timeout: int = 20, start_timeout: int = 30, network: bool = False
) -> Path:
    config = workdir / "mcp.yaml"
    config.write_text(
        f"""
version: 1
servers:
  time:
    transport: stdio
    command: mcp-server-time
    args: ["--local-timezone", "UTC"]
  fx:
    transport: stdio
    command: python3
    args: ["/srv/changing_server.py"]
    mounts: [{{source: "{workdir / "srv"}", target: /srv}}]
    start_timeout_s: {start_timeout}
    call_timeout_s: {call_timeout}
    network: {"true" if network else "false"}
"""
    )
    return config


def agentrt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=180,
        check=False,
    )


@asynccontextmanager
async def opened(workdir: Path, config: Path) -> AsyncIterator[tuple[Stack, list[Any]]]:
    stack = build_stack(
        "tools",
        policy=workdir / "policy",
        sandbox="inprocess",
        audit_log=workdir / "audit.jsonl",
        approvals_db=workdir / "approvals.db",
        mcp=config,
    )
    try:
        reports = await stack.open()
        yield stack, reports
    finally:
        await stack.aclose()


async def call(stack: Stack, tool: str, arguments: dict[str, Any], **extra: str) -> Any:
    request = ToolCallRequest(
        id=f"c-{secrets.token_hex(4)}", name=tool, arguments=json.dumps(arguments)
    )
    return await stack.pipeline().process(request, CallContext(run_id=request.id, extra=extra))


def audit(workdir: Path) -> list[tuple[str, dict[str, Any]]]:
    rows = [json.loads(line) for line in (workdir / "audit.jsonl").read_text().splitlines()]
    return [(row["event"], row["fields"]) for row in rows]


def pin(config: Path) -> None:
    done = agentrt("mcp", "pin", str(config))
    assert done.returncode == 0, done.stderr + done.stdout


async def test_list_call_validate_deny_and_approve(workdir: Path) -> None:
    config = write_config(workdir)
    pin(config)
    async with opened(workdir, config) as (stack, reports):
        assert {r.server_id: r.error for r in reports} == {"time": None, "fx": None}
        assert mcp_containers() == []  # the pinned tools are offered; nothing started yet
        names = set(stack.registry.names)
        assert {"time.get_current_time", "time.convert_time", "fx.echo", "fx.whoami"} <= names
        assert "calculate" in names  # the local tools are still there
        # a published schema that is not JSON Schema refuses the tool, saying so
        assert "fx.bad_schema" not in names
        refused = await call(stack, "fx.bad_schema", {"x": 1})
        assert refused.status is CallStatus.UNKNOWN_TOOL
        assert "not valid JSON Schema" in refused.error.message

        now = await call(stack, "time.get_current_time", {"timezone": "Europe/Paris"})
        assert now.status is CallStatus.OK, now.error
        assert now.result["timezone"] == "Europe/Paris"
        assert now.execution.sandbox["mode"] == "mcp-docker"

        # validated against the schema mcp-server-time publishes: never sent
        invalid = await call(stack, "time.get_current_time", {"timezone": 5})
        assert invalid.status is CallStatus.INVALID_ARGUMENTS
        assert "$.timezone" in invalid.error.message

        denied = await call(stack, "fx.echo", {"text": "my secret"})
        assert denied.status is CallStatus.DENIED
        assert "No secrets" in denied.error.message

        held = await call(
            stack,
            "time.convert_time",
            {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"},
        )
        assert held.status is CallStatus.PENDING_APPROVAL
        from runtime.approvals.resume import pause, run_approved

        assert stack.approvals is not None
        context = CallContext(run_id=held.request.id)
        ids = await pause(stack.approvals, [held], context, run_id=held.request.id)
        approval_id = ids[held.request.id]
        record = stack.approvals.approve(approval_id, by="test")
        approved = await run_approved(stack.pipeline(), record, stack.approvals, context)
        assert approved.status is CallStatus.OK, approved.error
        assert approved.result["target"]["datetime"].endswith("T21:00:00+09:00")

        # the server runs as nobody, without network, in one reused container
        who = await call(stack, "fx.whoami", {})
        again = await call(stack, "fx.whoami", {})
        assert who.status is CallStatus.OK, who.error
        assert who.result["uid"] == 65534
        assert who.result["interfaces"] == ["lo"]
        assert who.execution.sandbox["container_id"] == again.execution.sandbox["container_id"]
        assert len(mcp_containers()) == 2  # one per server, started once each

    records = audit(workdir)
    ends = {
        f["gen_ai.tool.call.id"]: (e, f)
        for e, f in records
        if "agentrt.status" in f and "gen_ai.tool.call.id" in f
    }
    finished = ends[now.request.id][1]
    assert finished["agentrt.mcp.server"] == "time"
    lock = json.loads((workdir / "mcp.lock").read_text())
    assert (
        finished["agentrt.mcp.pin_sha256"] == lock["servers"]["time"]["get_current_time"]["sha256"]
    )
    for outcome in (invalid, denied):
        assert not any(
            e == "execution.started" and f["gen_ai.tool.call.id"] == outcome.request.id
            for e, f in records
        )
    assert ends[denied.request.id][0] == "tool.denied"
    assert ends[denied.request.id][1]["agentrt.mcp.server"] == "fx"
    verified = agentrt("audit", "verify", str(workdir / "audit.jsonl"))
    assert verified.returncode == 0, verified.stdout + verified.stderr


async def test_changed_definitions_are_refused_until_pinned_again(workdir: Path) -> None:
    config = write_config(workdir)
    pin(config)
    (workdir / "srv" / "variant").write_text("2\n")  # the server's next release

    diff = agentrt("mcp", "diff", str(config))
    assert diff.returncode == 1
    assert "~ fx.echo" in diff.stdout and "+ fx.shout" in diff.stdout
    assert "description changed; input schema changed: added upper" in diff.stdout

    async with opened(workdir, config) as (stack, _):
        # offered as pinned; the first call starts the server, which publishes another echo
        assert "fx.echo" in stack.registry and mcp_containers() == []
        changed = await call(stack, "fx.echo", {"text": "hi"})
        assert changed.status is CallStatus.UNKNOWN_TOOL
        assert "changed since it was pinned" in changed.error.message
        assert "added upper" in changed.error.message
        assert changed.result is None and changed.error.type == "unknown_tool"  # not sent
        # and from then on it is refused at the gate, like the tool the server added
        assert "fx.echo" not in stack.registry
        again = await call(stack, "fx.echo", {"text": "hi"})
        assert again.status is CallStatus.UNKNOWN_TOOL and "added upper" in again.error.message
        assert again.execution is None
        new = await call(stack, "fx.shout", {"text": "hi"})
        assert new.status is CallStatus.UNKNOWN_TOOL and "not pinned" in new.error.message
        unchanged = await call(stack, "fx.whoami", {})
        assert unchanged.status is CallStatus.OK, unchanged.error
        assert stack.mcp is not None and stack.mcp.connection("fx").starts == 1

    pin(config)
    assert agentrt("mcp", "diff", str(config)).returncode == 0
    async with opened(workdir, config) as (stack, _):
        louder = await call(stack, "fx.echo", {"text": "hi", "upper": True})
        assert louder.status is CallStatus.OK and louder.result == "HI"
        shout = await call(stack, "fx.shout", {"text": "hey"})
        assert shout.status is CallStatus.OK and shout.result == "HEY"


async def test_a_crashed_server_is_restarted_on_the_next_call(workdir: Path) -> None:
    config = write_config(workdir)
    pin(config)
    async with opened(workdir, config) as (stack, _):
        before = await call(stack, "fx.whoami", {})
        crashed = await call(stack, "fx.crash", {})
        assert crashed.status is CallStatus.SANDBOX_ERROR
        assert crashed.error.type == "mcp_crashed"
        assert "exited during the call" in crashed.error.message
        after = await call(stack, "fx.whoami", {})
        assert after.status is CallStatus.OK, after.error
        assert after.execution.sandbox["container_id"] != before.execution.sandbox["container_id"]
        assert stack.mcp is not None
        assert stack.mcp.connection("fx").starts == 2
        # the crashed one is gone, and the time server, never called, never started
        assert mcp_containers() == [stack.mcp.connection("fx").container]


async def test_a_server_idle_crash_is_noticed_before_the_call(workdir: Path) -> None:
    config = write_config(workdir)
    pin(config)
    async with opened(workdir, config) as (stack, _):
        assert stack.mcp is not None
        connection = stack.mcp.connection("fx")
        assert connection.container is None  # not started before its first call
        first = await call(stack, "fx.whoami", {})
        assert first.status is CallStatus.OK, first.error
        assert connection.container is not None
        await asyncio.to_thread(
            subprocess.run,
            ["docker", "kill", connection.container],
            capture_output=True,
            check=True,
        )
        echoed = await call(stack, "fx.echo", {"text": "still here"})
        assert echoed.status is CallStatus.OK, echoed.error
        assert echoed.result == "still here" and connection.starts == 2


async def test_a_call_that_hangs_is_timed_out_and_the_server_replaced(workdir: Path) -> None:
    pin(write_config(workdir))
    config = write_config(workdir, call_timeout=3)
    async with opened(workdir, config) as (stack, _):
        started = asyncio.get_running_loop().time()
        hung = await call(stack, "fx.hang", {"seconds": 600})
        assert asyncio.get_running_loop().time() - started < 30
        assert hung.status is CallStatus.TIMEOUT
        assert "did not answer 'hang' within 3 s" in hung.error.message
        echoed = await call(stack, "fx.echo", {"text": "awake"})
        assert echoed.status is CallStatus.OK and echoed.result == "awake"


async def test_a_server_that_hangs_on_start_is_timed_out(workdir: Path) -> None:
    pin(write_config(workdir))
    config = write_config(workdir, start_timeout=3)
    (workdir / "srv" / "hang_on_start").write_text("")
    async with opened(workdir, config) as (stack, reports):
        assert {r.server_id: r.error for r in reports} == {"time": None, "fx": None}
        refused = await call(stack, "fx.echo", {"text": "hi"})
        assert refused.status is CallStatus.SANDBOX_ERROR
        assert refused.error.type == "mcp_start_timeout"
        assert "did not finish starting within 3 s" in refused.error.message
        now = await call(stack, "time.get_current_time", {"timezone": "UTC"})
        assert now.status is CallStatus.OK, now.error
        assert len(mcp_containers()) == 1  # only the time server's


async def test_network_only_when_asked_and_granted(workdir: Path) -> None:
    pin(write_config(workdir))
    async with opened(workdir, write_config(workdir, network=True)) as (stack, _):
        plain = await call(stack, "fx.whoami", {})
        granted = await call(stack, "fx.whoami", {}, net="yes")
    assert plain.status is CallStatus.OK and granted.status is CallStatus.OK
    assert plain.result["interfaces"] == ["lo"]  # asked, but this call was not granted it
    assert "eth0" in granted.result["interfaces"]
    assert plain.execution.sandbox["container_id"] != granted.execution.sandbox["container_id"]
    async with opened(workdir, write_config(workdir, network=False)) as (stack, _):
        refused = await call(stack, "fx.whoami", {}, net="yes")
    assert refused.result["interfaces"] == ["lo"]  # granted, but the file does not ask


def test_the_servers_file_is_strict(workdir: Path) -> None:
    config = workdir / "mcp.yaml"
    config.write_text(
        "version: 1\nservers:\n  time:\n    transport: stdio\n    command: x\n    comand: y\n"
    )
    done = agentrt("mcp", "diff", str(config))
    assert done.returncode == 2
    assert "unknown key 'comand'" in done.stderr and "mcp.yaml:6" in done.stderr
    config.write_text(
        "version: 1\nservers:\n  api:\n    transport: http\n    url: https://x.example/mcp\n"
        "    headers_from_env: {Authorization: 'Bearer abc'}\n"
    )
    done = agentrt("mcp", "diff", str(config))
    assert done.returncode == 2 and "must name an environment variable" in done.stderr


LEAKER = """
import asyncio, json, sys
from runtime.calls import CallContext, ToolCallRequest
from runtime.sandbox.reaper import owner_id
from runtime.stack import build_stack

async def main():
    stack = build_stack("tools", policy=sys.argv[2], sandbox="inprocess", audit_log=None,
                        approvals_db=None, mcp=sys.argv[1])
    await stack.open()
    request = ToolCallRequest(id="leak", name="fx.whoami", arguments="{}")
    outcome = await stack.pipeline().process(request, CallContext(run_id="leak"))
    connection = stack.mcp.connection("fx")
    print(json.dumps({"status": outcome.status.value, "owner": owner_id(),
                      "container": connection.container_id}), flush=True)
    await asyncio.Event().wait()  # never closes the stack: the test kills it

asyncio.run(main())
"""


def container_exists(container_id: str) -> bool:
    found = subprocess.run(["docker", "inspect", container_id], capture_output=True, check=False)
    return found.returncode == 0


async def test_a_killed_process_leaves_its_server_to_the_reaper(workdir: Path) -> None:
    config = write_config(workdir)
    pin(config)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LEAKER,
        str(config),
        str(workdir / "policy"),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(120):
            line = await process.stdout.readline()
        started = json.loads(line)
        assert started["status"] == "ok"
    finally:
        process.kill()  # SIGKILL: no stack.aclose(), no cleanup of any kind
        await process.wait()
    container, owner = started["container"], started["owner"]
    assert owner.split("/")[1] == str(process.pid)
    assert container_exists(container)  # leaked: its owner is gone, the container is not

    # scoped to the killed process, so other processes' containers on the engine are untouched
    reaped = agentrt("sandbox", "reap", "--owner", owner, "--json")
    assert reaped.returncode == 0, reaped.stderr
    assert json.loads(reaped.stdout)["removed"] == [container]
    assert not container_exists(container)
