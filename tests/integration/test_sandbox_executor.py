"""DockerExecutor against a real engine: outcomes, pools, sessions, failures to start.

Needs a running Docker engine and the sandbox image (`agentrt sandbox build-image`).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import pytest_asyncio

from runtime.calls import CallContext, CallStatus, ToolCallRequest
from runtime.policy.decision import allow_all
from runtime.sandbox.hardening import LABEL_EXECUTOR, LABEL_OWNER, default_image
from runtime.sandbox.reaper import owner_id

pytestmark = [pytest.mark.docker, pytest.mark.asyncio(loop_scope="module")]

TOOLS = '''
import asyncio
import os
import subprocess
import time

from runtime import tool


@tool
def add(a: int, b: int) -> int:
    """Add two numbers, saying so on stdout."""
    print("adding", a, b)
    return a + b


@tool
def divide(a: int, b: int) -> float:
    """Divide."""
    return a / b


@tool
async def later(value: str) -> str:
    """An async tool."""
    await asyncio.sleep(0.01)
    return value.upper()


@tool(timeout_s=1.0)
def sleepy(seconds: float) -> str:
    """Sleep longer than allowed."""
    time.sleep(seconds)
    return "woke"


@tool
def interfaces() -> list[str]:
    """Network interfaces the tool can see."""
    import socket

    return sorted(name for _, name in socket.if_nameindex())


@tool(sandbox={"network": True})
def wants_network() -> list[str]:
    """Ask for network; see what was granted."""
    import socket

    return sorted(name for _, name in socket.if_nameindex())


@tool
def identity() -> dict:
    """Who and what the tool runs as."""
    status = dict(
        line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line
    )
    return {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "cap_eff": status["CapEff"].strip(),
        "no_new_privs": status["NoNewPrivs"].strip(),
        "seccomp": status["Seccomp"].strip(),
        "hostname": os.uname().nodename,
    }


@tool
def spawn_sleeper() -> int:
    """Leave a background process behind."""
    return subprocess.Popen(["sleep", "300"], start_new_session=True).pid


@tool
def processes() -> list[str]:
    """Command lines of every process in the container."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                found.append(open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ").decode())
            except OSError:
                pass
    return found


@tool
def tmp_state(write: str | None = None) -> list[str]:
    """Write a file to /tmp (optionally) and list /tmp."""
    if write:
        open(f"/tmp/{write}", "w").write("x")
    return sorted(os.listdir("/tmp"))


@tool(sandbox={"memory": "128m", "pids_limit": 32, "tmpfs_size": "16m",
               "mounts": [{"source": "@MOUNT@", "target": "/data"}]})
def limited() -> dict:
    """Report the limits the container got, and try the mount."""
    stat = os.statvfs("/tmp")
    try:
        open("/data/new.txt", "w").write("no")
        wrote = "wrote"
    except OSError as exc:
        wrote = type(exc).__name__
    def first(*paths):
        for path in paths:
            if os.path.exists(path):
                return open(path).read().strip()
        return None

    return {
        "memory": int(first("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max")),
        "pids": first("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"),
        "tmp_bytes": stat.f_blocks * stat.f_frsize,
        "data": open("/data/hello.txt").read(),
        "write": wrote,
    }
'''

BROKEN = '''
import os
from runtime import tool

if os.path.exists("/opt/agentrt"):
    raise RuntimeError("this module refuses to load inside the sandbox")


@tool
def fine() -> int:
    """Works on the host only."""
    return 1
'''

PACKAGE_TOOLS = '''
from runtime import tool
from .helpers import double


@tool
def twice(x: int) -> int:
    """Double via a sibling module."""
    return double(x)
'''


def _load_file(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _docker() -> Any:
    import docker

    return docker.from_env(version="auto")


@pytest.fixture(scope="module", autouse=True)
def _no_leaks(no_sandbox_container_survives: None) -> None:
    """Every test here runs under the suite-wide leak check."""


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    root = tmp_path_factory.mktemp("sbx_int")
    data = root / "data"
    data.mkdir()
    (data / "hello.txt").write_text("hello from the host")
    source = root / "sbx_int_tools.py"
    source.write_text(TOOLS.replace("@MOUNT@", str(data)))
    return _load_file(source, "sbx_int_tools")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def executor() -> AsyncIterator[Any]:
    from runtime.sandbox.docker_executor import DockerExecutor

    async with DockerExecutor(pool_size=2) as ex:
        yield ex


def _exists(container_id: str) -> bool:
    import docker.errors

    client = _docker()
    try:
        client.containers.get(container_id)
    except docker.errors.NotFound:
        return False
    finally:
        client.close()
    return True


CTX = CallContext(tenant="t1")


async def test_ok_call_returns_result_output_and_facts(executor: Any, tools: ModuleType) -> None:
    result = await executor.execute(tools.add, {"a": 2, "b": 3}, CTX)
    assert result.status is CallStatus.OK, result.error
    assert result.result == 5
    assert result.stdout == "adding 2 3\n"
    facts = result.sandbox
    assert len(facts["container_id"]) == 64
    assert facts["mode"] == "per_call"
    assert facts["image"] == default_image()
    assert facts["exit_code"] is None and facts["network"] is False
    await executor.settle()
    assert not _exists(facts["container_id"])


async def test_async_tool(executor: Any, tools: ModuleType) -> None:
    result = await executor.execute(tools.later, {"value": "abc"}, CTX)
    assert (result.status, result.result) == (CallStatus.OK, "ABC")


async def test_tool_error_carries_type_message_and_traceback(
    executor: Any, tools: ModuleType
) -> None:
    result = await executor.execute(tools.divide, {"a": 1, "b": 0}, CTX)
    assert result.status is CallStatus.TOOL_ERROR
    assert result.error is not None
    assert result.error.type == "ZeroDivisionError"
    assert "division by zero" in result.error.message
    assert "in divide" in result.error.details[0] and "return a / b" in result.error.details[0]


async def test_timeout_kills_then_removes(executor: Any, tools: ModuleType) -> None:
    result = await executor.execute(tools.sleepy, {"seconds": 30}, CTX)
    assert result.status is CallStatus.TIMEOUT
    assert result.error is not None and "1 s" in result.error.message
    assert result.duration_ms < 5000
    assert result.sandbox["exit_code"] == 137
    await executor.settle()
    assert not _exists(result.sandbox["container_id"])


async def test_per_call_never_reuses_a_container(executor: Any, tools: ModuleType) -> None:
    results = [await executor.execute(tools.add, {"a": i, "b": 1}, CTX) for i in range(5)]
    assert [r.result for r in results] == [1, 2, 3, 4, 5]
    ids = [r.sandbox["container_id"] for r in results]
    assert len(set(ids)) == len(ids)


async def test_concurrent_calls_each_get_their_own_container(
    executor: Any, tools: ModuleType
) -> None:
    results = await asyncio.gather(
        *(executor.execute(tools.add, {"a": i, "b": 0}, CTX) for i in range(4))
    )
    assert sorted(r.result for r in results) == [0, 1, 2, 3]
    assert len({r.sandbox["container_id"] for r in results}) == 4


async def test_pool_refills_in_the_background(tools: ModuleType) -> None:
    from runtime.sandbox.docker_executor import DockerExecutor

    async with DockerExecutor(pool_size=2) as ex:
        await ex.wait_ready(tools.add)
        first = [await ex.execute(tools.add, {"a": i, "b": 0}, CTX) for i in range(2)]
        assert all(r.sandbox["warm"] for r in first)
        await ex.wait_ready(tools.add)  # returns only once two fresh containers wait
        (pool,) = ex.stats()["pools"]
        assert pool["ready"] == 2 and pool["started"] >= 4 and pool["handed_out"] == 2
        again = await ex.execute(tools.add, {"a": 9, "b": 0}, CTX)
        assert again.sandbox["warm"] is True
        assert again.sandbox["container_id"] not in {r.sandbox["container_id"] for r in first}


async def test_cold_path_without_a_pool(tools: ModuleType) -> None:
    from runtime.sandbox.docker_executor import DockerExecutor

    async with DockerExecutor(pool_size=0) as ex:
        result = await ex.execute(tools.add, {"a": 1, "b": 1}, CTX)
        assert (result.status, result.result) == (CallStatus.OK, 2)
        assert result.sandbox["mode"] == "cold" and result.sandbox["warm"] is False
        assert ex.stats()["pools"][0]["ready"] == 0


async def test_per_session_reuses_within_a_run_never_across(tools: ModuleType) -> None:
    from runtime.sandbox.docker_executor import DockerExecutor

    async with DockerExecutor(mode="per_session", pool_size=1) as ex:
        run_a = CallContext(tenant="t1", run_id="run-a")
        a1 = await ex.execute(tools.tmp_state, {"write": "from-a"}, run_a)
        a2 = await ex.execute(tools.tmp_state, {}, run_a)
        assert a1.sandbox["mode"] == "per_session"
        assert a1.sandbox["container_id"] == a2.sandbox["container_id"]
        assert "from-a" in a2.result  # same container, same /tmp
        b1 = await ex.execute(tools.tmp_state, {}, CallContext(tenant="t1", run_id="run-b"))
        other_tenant = await ex.execute(
            tools.tmp_state, {}, CallContext(tenant="t2", run_id="run-a")
        )
        ids = {a1.sandbox["container_id"], b1.sandbox["container_id"]}
        ids.add(other_tenant.sandbox["container_id"])
        assert len(ids) == 3
        assert "from-a" not in b1.result and "from-a" not in other_tenant.result

        await ex.end_run("run-a")
        assert not _exists(a1.sandbox["container_id"])
        assert not _exists(other_tenant.sandbox["container_id"])
        assert _exists(b1.sandbox["container_id"])
        a3 = await ex.execute(tools.tmp_state, {}, run_a)
        assert a3.sandbox["container_id"] not in ids and "from-a" not in a3.result
        await ex.end_run("run-a")
        await ex.end_run("run-b")
        assert not _exists(b1.sandbox["container_id"])


async def test_per_session_kills_what_a_call_left_running(tools: ModuleType) -> None:
    from runtime.sandbox.docker_executor import DockerExecutor

    async with DockerExecutor(mode="per_session", pool_size=0) as ex:
        run = CallContext(tenant="t1", run_id=f"run-{uuid.uuid4().hex}")
        spawned = await ex.execute(tools.spawn_sleeper, {}, run)
        assert spawned.status is CallStatus.OK
        seen = await ex.execute(tools.processes, {}, run)
        assert seen.sandbox["container_id"] == spawned.sandbox["container_id"]
        assert not any("sleep 300" in line for line in seen.result)
        await ex.end_run(run.run_id or "")


async def test_a_timeout_ends_the_session_container(tools: ModuleType) -> None:
    from runtime.sandbox.docker_executor import DockerExecutor

    async with DockerExecutor(mode="per_session", pool_size=0) as ex:
        run = CallContext(tenant="t1", run_id="run-timeout")
        first = await ex.execute(tools.sleepy, {"seconds": 30}, run)
        assert first.status is CallStatus.TIMEOUT
        second = await ex.execute(tools.add, {"a": 1, "b": 2}, run)
        assert second.status is CallStatus.OK
        assert second.sandbox["container_id"] != first.sandbox["container_id"]
        await ex.end_run("run-timeout")


async def test_hardening_reaches_the_container(executor: Any, tools: ModuleType) -> None:
    result = await executor.execute(tools.identity, {}, CTX)
    assert result.status is CallStatus.OK, result.error
    assert result.result == {
        "uid": 65534,
        "gid": 65534,
        "cap_eff": "0000000000000000",
        "no_new_privs": "1",
        "seccomp": "2",
        "hostname": "sandbox",
    }
    # the container's own record: inspect a warm one (the used one is already gone)
    await executor.wait_ready(tools.identity)
    client = _docker()
    try:
        (container,) = client.containers.list(
            filters={"label": f"{LABEL_EXECUTOR}={executor.id}"}, limit=1
        )
        host = container.attrs["HostConfig"]
        assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
        assert host["ReadonlyRootfs"] and host["Init"] and host["NetworkMode"] == "none"
        assert host["Memory"] == host["MemorySwap"] == 512 * 1024**2
        assert host["PidsLimit"] == 64 and host["NanoCpus"] == 1_000_000_000
        assert host["IpcMode"] == "none" and not host["Privileged"]
        assert {u["Name"] for u in host["Ulimits"]} >= {"nofile", "fsize", "cpu"}
        assert host["LogConfig"]["Config"]["max-size"] == "1m"
        assert container.attrs["Config"]["User"] == "65534:65534"
        assert container.labels[LABEL_OWNER] == owner_id()
        mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
        assert all(not m["RW"] for m in mounts.values())
    finally:
        client.close()


async def test_per_tool_limits_and_read_only_mounts(executor: Any, tools: ModuleType) -> None:
    result = await executor.execute(tools.limited, {}, CTX)
    assert result.status is CallStatus.OK, result.error
    assert result.result["memory"] == 128 * 1024**2
    assert result.result["pids"] == "32"
    assert result.result["tmp_bytes"] == 16 * 1024**2
    assert result.result["data"] == "hello from the host"
    assert result.result["write"] == "OSError"


async def test_network_needs_the_tool_to_ask_and_policy_to_allow(tools: ModuleType) -> None:
    from runtime.sandbox.docker_executor import DockerExecutor

    async with DockerExecutor(pool_size=0) as deny:
        denied = await deny.execute(tools.wants_network, {}, CTX)
        assert denied.result == ["lo"] and denied.sandbox["network"] is False
    granted_to: list[str] = []

    def allow(tool: Any, context: CallContext) -> bool:
        granted_to.append(tool.name)
        return context.tenant == "t1"

    async with DockerExecutor(pool_size=0, network_allowed=allow) as ex:
        not_asked = await ex.execute(tools.interfaces, {}, CTX)
        assert not_asked.result == ["lo"]
        other = await ex.execute(tools.wants_network, {}, CallContext(tenant="t2"))
        assert other.result == ["lo"]
        granted = await ex.execute(tools.wants_network, {}, CTX)
        assert granted.sandbox["network"] is True and "eth0" in granted.result
    assert granted_to == ["wants_network", "wants_network"]


async def test_package_module_is_mounted_and_imported_by_name(
    executor: Any, tmp_path: Path
) -> None:
    package = tmp_path / "sbx_int_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("def double(x):\n    return 2 * x\n")
    (package / "tools.py").write_text(textwrap.dedent(PACKAGE_TOOLS))
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module("sbx_int_pkg.tools")
    finally:
        sys.path.remove(str(tmp_path))
    result = await executor.execute(module.twice, {"x": 21}, CTX)
    assert (result.status, result.result) == (CallStatus.OK, 42), result.error


async def test_module_failing_to_import_in_the_sandbox(executor: Any, tmp_path: Path) -> None:
    path = tmp_path / "sbx_int_broken.py"
    path.write_text(BROKEN)
    module = _load_file(path, "sbx_int_broken")
    result = await executor.execute(module.fine, {}, CTX)
    assert result.status is CallStatus.SANDBOX_ERROR
    assert result.error is not None and "failed to import" in result.error.message
    assert "refuses to load" in result.error.message


async def test_daemon_down_is_a_sandbox_error_saying_how_to_fix_it(tools: ModuleType) -> None:
    from runtime.sandbox.docker_executor import DockerExecutor

    ex = DockerExecutor(docker_host="unix:///nonexistent/agentrt-test.sock")
    try:
        result = await ex.execute(tools.add, {"a": 1, "b": 1}, CTX)
    finally:
        await ex.aclose()
    assert result.status is CallStatus.SANDBOX_ERROR
    assert result.error is not None and result.error.type == "docker_unavailable"
    assert "dockerd" in result.error.message and "nonexistent" in result.error.message


async def test_missing_image_is_a_sandbox_error_saying_how_to_fix_it(tools: ModuleType) -> None:
    from runtime.sandbox.docker_executor import DockerExecutor

    image = f"agentrt-sandbox:missing-{uuid.uuid4().hex[:8]}"
    async with DockerExecutor(image=image, pool_size=1) as ex:
        result = await ex.execute(tools.add, {"a": 1, "b": 1}, CTX)
        again = await ex.execute(tools.add, {"a": 1, "b": 1}, CTX)  # fails fast, same words
    for outcome in (result, again):
        assert outcome.status is CallStatus.SANDBOX_ERROR
        assert outcome.error is not None and outcome.error.type == "image_missing"
        assert "agentrt sandbox build-image" in outcome.error.message
        assert image in outcome.error.message


async def test_cancelled_call_leaves_no_container(tools: ModuleType) -> None:
    from runtime.sandbox.docker_executor import DockerExecutor

    async with DockerExecutor(pool_size=1) as ex:
        await ex.wait_ready(tools.sleepy)
        task = asyncio.create_task(ex.execute(tools.sleepy, {"seconds": 0.9}, CTX))
        # no event marks "the call has its container": poll the pool's counter
        while ex.stats()["pools"][0]["handed_out"] == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await ex.settle()
        ready = {c for c in _labelled(ex.id)}
        assert len(ready) <= 1  # at most the refilled warm container
    assert not _labelled(ex.id)


async def test_aclose_drains_the_pool(tools: ModuleType) -> None:
    from runtime.sandbox.docker_executor import DockerExecutor

    ex = DockerExecutor(pool_size=2)
    await ex.prewarm([tools.add, tools.identity], wait=True)  # same config: one pool
    assert len(_labelled(ex.id)) == 2
    await ex.aclose()
    assert not _labelled(ex.id)


async def test_calls_waiting_for_a_container_are_not_the_tools_timeout(
    tools: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13, case 4: under load, calls queued for a container were reported `timeout`."""
    import runtime.pipeline
    from runtime.pipeline import ToolCallPipeline
    from runtime.sandbox.docker_executor import DockerExecutor
    from runtime.tools import ToolRegistry

    # Without grace the old backstop (timeout + grace) is the tool's 1 s: calls
    # queued behind one-at-a-time cold starts wait longer than that.
    monkeypatch.setattr(runtime.pipeline, "TIMEOUT_GRACE_S", 0.0)
    async with DockerExecutor(pool_size=0, start_concurrency=1) as ex:
        pipeline = ToolCallPipeline(ToolRegistry([tools.sleepy]), ex, policy=allow_all())
        outcomes = await asyncio.gather(
            *(
                pipeline.process(ToolCallRequest(f"c{i}", "sleepy", '{"seconds": 0}'), CTX)
                for i in range(6)
            )
        )
    assert [o.status for o in outcomes] == [CallStatus.OK] * 6, [o.error for o in outcomes]
    assert max(o.duration_ms for o in outcomes) > 1000  # some did wait past the old backstop


async def test_no_container_within_the_wait_is_a_sandbox_error_not_a_timeout(
    tools: ModuleType,
) -> None:
    from runtime.pipeline import ToolCallPipeline
    from runtime.sandbox.docker_executor import DockerExecutor
    from runtime.tools import ToolRegistry

    async with DockerExecutor(pool_size=0, start_concurrency=1, sandbox_wait_s=0.05) as ex:
        pipeline = ToolCallPipeline(ToolRegistry([tools.add]), ex, policy=allow_all())
        outcomes = await asyncio.gather(
            *(
                pipeline.process(ToolCallRequest(f"w{i}", "add", '{"a": 1, "b": 2}'), CTX)
                for i in range(3)
            )
        )
        await ex.settle()
    for outcome in outcomes:
        assert outcome.status is CallStatus.SANDBOX_ERROR
        assert outcome.error is not None and outcome.error.type == "sandbox_wait"
        assert outcome.error.message.startswith("no sandbox within 0.05 s")
        assert "the tool did not run" in outcome.error.message
        assert outcome.execution is not None
        assert outcome.execution.sandbox["container_id"] is None
        assert outcome.execution.duration_ms >= 50
    assert not _labelled(ex.id)


def _labelled(executor_id: str) -> list[str]:
    client = _docker()
    try:
        found = client.containers.list(
            all=True, filters={"label": f"{LABEL_EXECUTOR}={executor_id}"}
        )
        return [c.id for c in found]
    finally:
        client.close()
