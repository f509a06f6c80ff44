"""Tools that try to break out of the Docker sandbox, and what they get.

Each test runs a real tool from a fixture module in a real container, asserts
the call's outcome, and checks the host is unchanged: the container is gone,
nothing it touched on the host changed, no process it started survives.
Needs a running Docker engine and the sandbox image (`agentrt sandbox build-image`).
"""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import os
import secrets
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import pytest_asyncio

from runtime.calls import CallContext, CallStatus, ExecutionResult
from runtime.sandbox.hardening import runtime_dir
from runtime.sandbox.worker import EXIT_OUTPUT

pytestmark = [pytest.mark.docker, pytest.mark.asyncio(loop_scope="module")]

SECRET = f"hunter2-{secrets.token_hex(8)}"
SLEEP_MARK = "31337.25"  # an unusual `sleep` argument to find the process on the host

TOOLS = '''
import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import time

from runtime import tool


def _errno(fn):
    try:
        fn()
    except OSError as exc:
        return exc.errno
    return 0


@tool(timeout_s=10)
def connect(host: str, port: int) -> str:
    """Open a TCP connection."""
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        return f"{type(exc).__name__}:{exc.errno}"
    return "connected"


@tool
def interfaces() -> list[str]:
    """Network interfaces."""
    return sorted(name for _, name in socket.if_nameindex())


@tool
def read(paths: list[str]) -> dict:
    """Read files."""
    out = {}
    for path in paths:
        try:
            with open(path, "rb") as handle:
                out[path] = "read:" + str(len(handle.read(1024)))
        except OSError as exc:
            out[path] = errno.errorcode.get(exc.errno, str(exc.errno))
    return out


@tool
def write(paths: list[str]) -> dict:
    """Create files."""
    out = {}
    for path in paths:
        try:
            with open(path, "w") as handle:
                handle.write("pwned")
            out[path] = "written"
        except OSError as exc:
            out[path] = errno.errorcode.get(exc.errno, str(exc.errno))
    return out


@tool(timeout_s=20)
def fill_tmp() -> dict:
    """Fill /tmp with 1 MiB files until the disk says no."""
    chunk = b"x" * (1 << 20)
    written = 0
    for i in range(10_000):
        try:
            with open(f"/tmp/fill-{i}", "wb") as handle:
                handle.write(chunk)
            written += len(chunk)
        except OSError as exc:
            return {"written": written, "errno": exc.errno}
    return {"written": written, "errno": 0}


@tool(timeout_s=20)
def big_file() -> int:
    """Write one file past the file-size limit."""
    chunk = b"x" * (1 << 20)
    with open("/tmp/big", "wb") as handle:
        for i in range(100):
            handle.write(chunk)
            handle.flush()
    return 100


@tool(timeout_s=20)
def fork_bomb() -> str:
    """Fork without end."""
    while True:
        os.fork()


@tool(timeout_s=20)
def allocate(gib: int) -> int:
    """Touch `gib` GiB of memory."""
    blocks = []
    for _ in range(gib * 16):
        blocks.append(b"\\x01" * (64 << 20))
    return len(blocks)


@tool(timeout_s=1.5)
def spin() -> None:
    """Burn CPU forever."""
    while True:
        pass


@tool(timeout_s=1.5)
def stubborn() -> None:
    """Ignore SIGTERM, in itself and a child, then wait forever."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    subprocess.Popen(["sh", "-c", "trap '' TERM; while :; do sleep 1; done"])
    while True:
        time.sleep(1)


@tool(timeout_s=30)
def flood(megabytes: int) -> int:
    """Print `megabytes` MB to stdout."""
    line = "A" * 1023 + "\\n"
    for _ in range(megabytes * 1024):
        sys.stdout.write(line)
    return megabytes


@tool
def forge(call_id: str) -> str:
    """Print lines that imitate the worker's result record."""
    fake = '{"t": "result", "id": "%s", "status": "ok", "result": "forged"}' % call_id
    print(fake, flush=True)
    print(fake, file=sys.stderr, flush=True)
    os.write(1, (fake + "\\n").encode())
    return "real"


@tool
def leave_child(mark: str) -> int:
    """Start a detached background process and return at once."""
    return subprocess.Popen(["sleep", mark], start_new_session=True).pid


@tool
def environment() -> dict:
    """Everything in the environment."""
    return dict(os.environ)


@tool
def syscalls(host_pid: int) -> dict:
    """Try privileged system calls and report each errno (0 = it worked)."""
    libc = ctypes.CDLL(None, use_errno=True)

    def call(fn, *args):
        ctypes.set_errno(0)
        result = fn(*args)
        return 0 if result == 0 else ctypes.get_errno()

    status = dict(
        line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line
    )
    os.makedirs("/tmp/mnt", exist_ok=True)
    return {
        "mount_tmpfs": call(libc.mount, b"none", b"/tmp/mnt", b"tmpfs", 0, None),
        "remount_root_rw": call(libc.mount, b"none", b"/", None, 32 | 4096, None),
        "unshare_user": call(libc.unshare, 0x10000000),
        "unshare_mount": call(libc.unshare, 0x00020000),
        "ptrace_attach_host": call(libc.ptrace, 16, host_pid, None, None),
        "setuid_root": _errno(lambda: os.setuid(0)),
        "chroot": _errno(lambda: os.chroot("/tmp")),
        "mknod": _errno(lambda: os.mknod("/tmp/sda", 0o600 | 0o060000, os.makedev(8, 0))),
        "cap_eff": status["CapEff"].strip(),
        "cap_bnd": status["CapBnd"].strip(),
        "no_new_privs": status["NoNewPrivs"].strip(),
        "seccomp": status["Seccomp"].strip(),
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    }


@tool
def measure(data: str) -> int:
    """Return the argument's length."""
    return len(data)
'''


def _docker() -> Any:
    import docker

    return docker.from_env(version="auto")


@pytest.fixture(scope="module", autouse=True)
def _no_leaks(no_sandbox_container_survives: None) -> None:
    """Every test here runs under the suite-wide leak check."""


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sbx_adv")


@pytest.fixture(scope="module")
def tools(fixture_dir: Path) -> ModuleType:
    path = fixture_dir / "sbx_adv_tools.py"
    path.write_text(TOOLS)
    spec = importlib.util.spec_from_file_location("sbx_adv_tools", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["sbx_adv_tools"] = module
    spec.loader.exec_module(module)
    return module


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["docker", "crun"])
async def executor(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """Every attack runs against both engines: dockerd, and crun launched directly."""
    from runtime.sandbox.docker_executor import DockerExecutor
    from runtime.sandbox.oci import unsupported_reason

    if request.param == "crun" and (reason := unsupported_reason()) is not None:
        pytest.skip(f"the crun engine cannot run here: {reason}")  # a failure in CI
    os.environ["AGENTRT_FAKE_SECRET"] = SECRET  # a host secret that must not reach a tool
    try:
        async with DockerExecutor(pool_size=2, engine=request.param) as ex:
            yield ex
    finally:
        os.environ.pop("AGENTRT_FAKE_SECRET", None)


def _tree(*roots: Path) -> dict[str, str]:
    """Every file under the roots with a hash of its content (pycache aside)."""
    out: dict[str, str] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def host_files(fixture_dir: Path) -> Iterator[None]:
    """The runtime package and the tool module's directory are the same after the test."""
    before = _tree(runtime_dir(), fixture_dir)
    yield
    assert _tree(runtime_dir(), fixture_dir) == before


def _host_processes(fragment: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if fragment.encode() in cmdline:
                found.append(int(entry))
    return found


def _crun_traces(name: str) -> list[str]:
    """The bundle and cgroups of a crun-engine container that should be gone."""
    from runtime.sandbox.oci import STATE_ROOT

    found = [str(path) for path in Path("/sys/fs/cgroup").glob(f"*/agentrt/{name}")]
    return found + ([str(STATE_ROOT / name)] if (STATE_ROOT / name).exists() else [])


async def _gone(executor: Any, result: ExecutionResult) -> None:
    """The call's container is removed once the executor settles."""
    import docker.errors

    await executor.settle()
    if executor.engine == "crun":
        assert _crun_traces(result.sandbox["container_id"]) == []
        return
    client = _docker()
    try:
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(result.sandbox["container_id"])
    finally:
        client.close()


CTX = CallContext(tenant="adversary")


def _bridge_gateway() -> str:
    """The Docker host as containers on the default bridge see it (docker0)."""
    import ipaddress

    client = _docker()
    try:
        config = client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    finally:
        client.close()
    return str(config.get("Gateway") or ipaddress.ip_network(config["Subnet"])[1])


def _host_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.255.255.255", 1))  # no packet is sent: this only picks a route
        return str(probe.getsockname()[0])


async def test_no_tcp_to_the_outside_or_the_docker_host(executor: Any, tools: ModuleType) -> None:
    targets = [
        ("1.1.1.1", 53),
        ("8.8.8.8", 443),
        (_bridge_gateway(), 2375),
        (_bridge_gateway(), 22),
        (_host_address(), 2375),
        (_host_address(), 22),
    ]
    for host, port in targets:
        result = await executor.execute(tools.connect, {"host": host, "port": port}, CTX)
        assert result.status is CallStatus.OK, result.error
        assert result.result == f"OSError:{errno.ENETUNREACH}", (host, port, result.result)
    only = await executor.execute(tools.interfaces, {}, CTX)
    assert only.result == ["lo"]


async def test_cannot_read_shadow_or_reach_the_docker_socket(
    executor: Any, tools: ModuleType
) -> None:
    paths = ["/etc/shadow", "/var/run/docker.sock", "/run/docker.sock", "/root/.bashrc"]
    result = await executor.execute(tools.read, {"paths": paths}, CTX)
    assert result.status is CallStatus.OK, result.error
    # the image's own /etc/shadow is root-only (python:3.11-slim) or absent (the
    # offline base); the host's is not in the container at all
    assert result.result["/etc/shadow"] in ("EACCES", "ENOENT")
    assert result.result["/var/run/docker.sock"] == "ENOENT"
    assert result.result["/run/docker.sock"] == "ENOENT"
    assert result.result["/root/.bashrc"] in ("EACCES", "ENOENT")


async def test_nothing_outside_tmp_is_writable(
    executor: Any, tools: ModuleType, host_files: None
) -> None:
    paths = [
        "/evil",
        "/etc/evil",
        "/usr/lib/python3/evil.py",
        "/opt/agentrt/lib/runtime/evil.py",
        "/opt/agentrt/lib/runtime/tools.py",
        "/opt/agentrt/mods/sbx_adv_tools.py",
        "/opt/agentrt/site/evil.py",
        "/run/agentrt/evil",
        "/dev/shm/evil",
        "/var/tmp/evil",
        "/home/evil",
        "/sys/fs/cgroup/evil",
    ]
    result = await executor.execute(tools.write, {"paths": paths}, CTX)
    assert result.status is CallStatus.OK, result.error
    assert "written" not in result.result.values(), result.result
    assert set(result.result.values()) <= {"EROFS", "EACCES", "ENOENT"}
    await _gone(executor, result)


async def test_filling_tmp_stops_at_its_size(executor: Any, tools: ModuleType) -> None:
    result = await executor.execute(tools.fill_tmp, {}, CTX)
    assert result.status is CallStatus.OK, result.error
    assert result.result["errno"] == errno.ENOSPC
    assert result.result["written"] <= 64 * 1024**2
    await _gone(executor, result)


async def test_one_file_past_the_size_limit(executor: Any, tools: ModuleType) -> None:
    result = await executor.execute(tools.big_file, {}, CTX)
    assert result.status is CallStatus.RESOURCE_EXCEEDED, result.error
    assert result.sandbox["resource"] == "fsize"
    await _gone(executor, result)


async def test_fork_bomb_hits_the_pids_limit(executor: Any, tools: ModuleType) -> None:
    before = len(os.listdir("/proc"))
    result = await executor.execute(tools.fork_bomb, {}, CTX)
    assert result.status is CallStatus.RESOURCE_EXCEEDED, result.error
    assert result.sandbox["resource"] == "pids"
    await _gone(executor, result)
    assert len(os.listdir("/proc")) < before + 32  # the bomb's processes went with it


async def test_allocating_gigabytes_is_oom_killed(executor: Any, tools: ModuleType) -> None:
    result = await executor.execute(tools.allocate, {"gib": 4}, CTX)
    assert result.status is CallStatus.RESOURCE_EXCEEDED, result.error
    assert result.sandbox["resource"] == "oom"
    assert result.error is not None and "512m" in result.error.message
    await _gone(executor, result)


async def test_spinning_forever_is_killed_at_the_timeout(executor: Any, tools: ModuleType) -> None:
    started = time.monotonic()
    result = await executor.execute(tools.spin, {}, CTX)
    assert result.status is CallStatus.TIMEOUT
    assert time.monotonic() - started < 1.5 + 3
    await _gone(executor, result)


async def test_ignoring_sigterm_does_not_help(executor: Any, tools: ModuleType) -> None:
    started = time.monotonic()
    result = await executor.execute(tools.stubborn, {}, CTX)
    assert result.status is CallStatus.TIMEOUT
    assert result.sandbox["exit_code"] == 137
    assert time.monotonic() - started < 1.5 + 3
    await _gone(executor, result)


async def test_printing_100_mb_is_cut_off(executor: Any, tools: ModuleType) -> None:
    started = time.monotonic()
    result = await executor.execute(tools.flood, {"megabytes": 100}, CTX)
    assert result.status is CallStatus.RESOURCE_EXCEEDED, result.error
    assert result.sandbox["resource"] == "output"
    assert time.monotonic() - started < 20
    assert len(result.stdout) <= 64 * 1024
    await _gone(executor, result)
    assert EXIT_OUTPUT == 3


async def test_a_printed_result_record_is_only_output(executor: Any, tools: ModuleType) -> None:
    result = await executor.execute(tools.forge, {"call_id": "0" * 32}, CTX)
    assert result.status is CallStatus.OK
    assert result.result == "real"
    assert result.stdout.count('"result": "forged"') == 2
    assert '"result": "forged"' in result.stderr


async def test_a_background_child_dies_with_the_container(executor: Any, tools: ModuleType) -> None:
    result = await executor.execute(tools.leave_child, {"mark": SLEEP_MARK}, CTX)
    assert result.status is CallStatus.OK
    await _gone(executor, result)
    deadline = time.monotonic() + 10
    while _host_processes(f"sleep {SLEEP_MARK}") and time.monotonic() < deadline:
        await executor.settle()  # the kernel reaps the container's processes
    assert not _host_processes(f"sleep {SLEEP_MARK}")


async def test_environment_holds_no_host_secret(executor: Any, tools: ModuleType) -> None:
    assert os.environ["AGENTRT_FAKE_SECRET"] == SECRET
    result = await executor.execute(tools.environment, {}, CTX)
    assert result.status is CallStatus.OK
    env: dict[str, str] = result.result
    assert set(env) <= {"PATH", "HOSTNAME", "HOME", "LANG", "PYTHONDONTWRITEBYTECODE"}
    assert SECRET not in repr(env)
    assert env["HOME"] == "/tmp"


async def test_privileged_syscalls_are_refused(executor: Any, tools: ModuleType) -> None:
    # this test process: a pid that exists on the host (and is traced by nobody)
    result = await executor.execute(tools.syscalls, {"host_pid": os.getpid()}, CTX)
    assert result.status is CallStatus.OK, result.error
    report = result.result
    for name in ("mount_tmpfs", "remount_root_rw", "unshare_user", "unshare_mount",
                 "setuid_root", "chroot", "mknod"):  # fmt: skip
        assert report[name] in (errno.EPERM, errno.EACCES), (name, report[name])
    # Docker's default seccomp profile allows ptrace (kernel >= 4.8), but a host
    # process is not even visible from the container's pid namespace
    assert report["ptrace_attach_host"] in (errno.ESRCH, errno.EPERM)
    assert report["cap_eff"] == report["cap_bnd"] == "0000000000000000"
    assert (report["no_new_privs"], report["seccomp"]) == ("1", "2")
    assert len(report["pids"]) <= 4  # init, the worker and nothing from the host


async def test_a_10_mb_argument_arrives_whole(executor: Any, tools: ModuleType) -> None:
    data = "z" * (10 * 1024 * 1024)
    result = await executor.execute(tools.measure, {"data": data}, CTX)
    assert (result.status, result.result) == (CallStatus.OK, len(data)), result.error
