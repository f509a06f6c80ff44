"""The `crun` engine: the same hardened containers, launched by the OCI runtime directly.

Where a fresh Docker container's cost goes on a 2-core host (measured, see
the README's sandbox section): dockerd and containerd cost ~0.18 s of CPU per
container before the OCI runtime runs at all, and `network: none` adds ~0.1 s
more (dockerd re-executes itself to create the network namespace). `crun`
alone creates the same namespaces, cgroups, seccomp filter and mounts in
~0.02 s. This engine skips the daemons for use-once tool containers:

- the sandbox image's filesystem is exported once (through Docker) into a
  read-only root shared by every container, keyed by the image id;
- each container's OCI spec is what Docker would generate from the same
  `container_spec()` (namespaces, capabilities, seccomp profile, masked and
  read-only paths, devices, rlimits, tmpfs, mounts, init); a test compares it
  with the spec dockerd gives runc;
- each container's cgroup sits in a parent cgroup this engine owns, whose
  memory high-water mark tells an OOM kill after crun has deleted the
  container's own cgroup.

It needs root, `crun`, `docker-init` (tini) and cgroup v1 with the memory
controller. Containers with network access are not its job: the executor
starts those through Docker.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from runtime.sandbox.containers import DockerAPI, SandboxUnavailable

T = TypeVar("T")
STATE_ROOT = Path("/run/agentrt-oci")
ROOTFS_ROOT = Path("/var/lib/agentrt/rootfs")
MEMORY_CGROUP = Path("/sys/fs/cgroup/memory")
UNIFIED_CGROUP = Path("/sys/fs/cgroup/unified")
CGROUP_PARENT = "agentrt"
INIT_PATH = "/sbin/docker-init"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SECCOMP = Path(__file__).with_name("seccomp_docker_default.json")
_LOG_TAIL = 8192

# What Docker adds to every container it creates (moby's oci.DefaultSpec and
# daemon defaults for a private network namespace, as of Docker 20.10).
_DEFAULT_MOUNTS: list[dict[str, Any]] = [
    {
        "destination": "/proc",
        "type": "proc",
        "source": "proc",
        "options": ["nosuid", "noexec", "nodev"],
    },
    {
        "destination": "/dev",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
        "destination": "/dev/pts",
        "type": "devpts",
        "source": "devpts",
        "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    {
        "destination": "/sys",
        "type": "sysfs",
        "source": "sysfs",
        "options": ["nosuid", "noexec", "nodev", "ro"],
    },
    {
        "destination": "/sys/fs/cgroup",
        "type": "cgroup",
        "source": "cgroup",
        "options": ["ro", "nosuid", "noexec", "nodev"],
    },
    {
        "destination": "/dev/mqueue",
        "type": "mqueue",
        "source": "mqueue",
        "options": ["nosuid", "noexec", "nodev"],
    },
]
_DEVICES: list[dict[str, Any]] = [
    {"allow": False, "access": "rwm"},
    *(
        {"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
        for major, minor in ((1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1))
    ),
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
]
_MASKED_PATHS = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
]
_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
# crun mounts cgroup v1's /sys/fs/cgroup as a world-writable tmpfs even when asked for
# "ro" (runc makes it read-only): remounting it read-only restores Docker's behaviour
_READONLY_PATHS_CRUN = [*_READONLY_PATHS, "/sys/fs/cgroup"]
_PRIVATE_NET_SYSCTLS = {
    "net.ipv4.ip_unprivileged_port_start": "0",
    "net.ipv4.ping_group_range": "0 2147483647",
}


def init_binary() -> str | None:
    """The host's tini, which Docker mounts as every container's init."""
    for name in ("docker-init", "tini-static", "tini"):
        found = shutil.which(name)
        if found:
            return str(Path(found).resolve())
    return None


def memory_cgroup_v1() -> bool:
    return (MEMORY_CGROUP / "memory.limit_in_bytes").exists()


def unsupported_reason() -> str | None:
    """Why this host cannot run the crun engine, or None when it can."""
    if os.geteuid() != 0:
        return "the crun engine runs containers itself and needs root"
    if shutil.which("crun") is None:
        return "crun is not installed (`apt-get install crun`)"
    if init_binary() is None:
        return "no docker-init/tini on the host to run as the containers' init"
    if not memory_cgroup_v1():
        return "the crun engine needs the cgroup v1 memory controller at /sys/fs/cgroup/memory"
    hybrid = hybrid_controllers()
    if hybrid:
        return (
            f"cgroup v2 holds the {', '.join(hybrid)} controller(s) beside cgroup v1, which crun "
            f"refuses; mount them as v1 before dockerd starts (scripts/setup.sh's setup_crun)"
        )
    return None


def hybrid_controllers() -> list[str]:
    """Controllers the unified (v2) hierarchy holds on a cgroup v1 host."""
    try:
        return (UNIFIED_CGROUP / "cgroup.controllers").read_text().split()
    except OSError:
        return []


def _environment(image_env: list[str], given: dict[str, Any], hostname: str) -> list[str]:
    """The environment dockerd builds: default PATH and HOSTNAME, the image's, then the given."""
    merged = [f"{key}={value}" for key, value in given.items()]
    merged = [entry for entry in image_env if entry.partition("=")[0] not in given] + merged
    env = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"]
    for entry in merged:
        key = entry.partition("=")[0]
        for index, existing in enumerate(env):
            if existing.partition("=")[0] == key:
                env[index] = entry
                break
        else:
            env.append(entry)
    return env


def _rlimit(ulimit: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": f"RLIMIT_{str(ulimit['Name']).upper()}",
        "hard": int(ulimit["Hard"]),
        "soft": int(ulimit["Soft"]),
    }


def _bind(mount: dict[str, Any]) -> dict[str, Any]:
    return {
        "destination": mount["Target"],
        "type": "bind",
        "source": mount["Source"],
        "options": ["rbind", "ro", "rprivate"] if mount.get("ReadOnly") else ["rbind", "rprivate"],
    }


def oci_spec(
    spec: dict[str, Any],
    *,
    rootfs: str,
    image_env: list[str],
    init: str,
    cgroups_path: str,
) -> dict[str, Any]:
    """The OCI runtime spec Docker would generate for `container_spec()`'s output.

    Args:
        spec: Keyword arguments for docker's `create_container`.
        rootfs: The exported image root (mounted read-only).
        image_env: The image's `Env` (Docker puts it before the container's).
        init: Host path of tini, mounted at /sbin/docker-init.
        cgroups_path: The container's cgroup (crun creates and deletes it).

    Raises:
        SandboxUnavailable: The spec asks for something this engine does not do.
    """
    host = spec["host_config"]
    if host.get("NetworkMode") != "none" or host.get("IpcMode") != "none":
        raise SandboxUnavailable(
            "docker_error", "the crun engine only runs containers without network or IPC"
        )
    if not host.get("ReadonlyRootfs") or host.get("Privileged") or host.get("CapAdd"):
        raise SandboxUnavailable("docker_error", "the crun engine only runs hardened containers")
    uid, _, gid = str(spec["user"]).partition(":")
    hostname = str(spec.get("hostname") or "sandbox")
    env = _environment(image_env, spec.get("environment") or {}, hostname)
    args = [INIT_PATH, "--", *spec["command"]] if host.get("Init") else list(spec["command"])
    mounts = [dict(m, options=list(m["options"])) for m in _DEFAULT_MOUNTS]
    if host.get("Init"):
        mounts.append(
            {"destination": INIT_PATH, "type": "bind", "source": init, "options": ["bind", "ro"]}
        )
    extra = [
        {
            "destination": target,
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["rprivate", *str(options).split(",")],
        }
        for target, options in (host.get("Tmpfs") or {}).items()
    ]
    extra.extend(_bind(mount) for mount in host.get("Mounts") or [])
    # as dockerd does: shallower targets first, so a mount never hides one inside it
    mounts.extend(sorted(extra, key=lambda m: m["destination"].rstrip("/").count("/")))
    security = host.get("SecurityOpt") or []
    nano_cpus = int(host.get("NanoCpus") or 0)
    resources: dict[str, Any] = {"devices": [dict(d) for d in _DEVICES]}
    if host.get("Memory"):
        memory = int(host["Memory"])
        swap = int(host.get("MemorySwap") or memory)
        resources["memory"] = {"limit": memory, "swap": swap, "disableOOMKiller": False}
    if nano_cpus:
        resources["cpu"] = {"quota": nano_cpus // 10_000, "period": 100_000}
    if host.get("PidsLimit"):
        resources["pids"] = {"limit": int(host["PidsLimit"])}
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "user": {"uid": int(uid), "gid": int(gid or uid), "additionalGids": [int(gid or uid)]},
            "args": args,
            "env": env,
            "cwd": spec.get("working_dir") or "/",
            "capabilities": {},
            "rlimits": [_rlimit(u) for u in host.get("Ulimits") or []],
            "noNewPrivileges": "no-new-privileges" in security,
            "oomScoreAdj": 0,
        },
        "root": {"path": rootfs, "readonly": True},
        "hostname": hostname,
        "mounts": mounts,
        "linux": {
            "sysctl": dict(_PRIVATE_NET_SYSCTLS),
            "resources": resources,
            "cgroupsPath": cgroups_path,
            "namespaces": [{"type": t} for t in ("mount", "network", "uts", "pid", "ipc")],
            "seccomp": json.loads(_SECCOMP.read_text()),
            "maskedPaths": list(_MASKED_PATHS),
            "readonlyPaths": list(_READONLY_PATHS_CRUN),
        },
    }


@dataclasses.dataclass
class _Container:
    name: str
    bundle: Path
    memory_cgroup: Path
    labels: dict[str, str]
    process: asyncio.subprocess.Process | None = None
    exit_code: int | None = None
    killed: bool = False
    log: bytearray = dataclasses.field(default_factory=bytearray)
    reader: asyncio.Task[None] | None = None
    memory_limit: int = 0
    oom_killed: bool | None = None


class CrunAPI:
    """Runs sandbox containers with `crun` directly; the subset of `DockerAPI` the executor uses.

    Args:
        docker: The Docker connection, used only to export an image's filesystem.
        state_root: Where bundles and crun's state live (a tmpfs under /run).
        rootfs_root: Where exported image roots are kept between runs.
    """

    def __init__(
        self,
        docker: DockerAPI,
        *,
        state_root: Path = STATE_ROOT,
        rootfs_root: Path = ROOTFS_ROOT,
    ) -> None:
        self._docker = docker
        self._state_root = state_root
        self._crun_root = state_root / "crun"
        self._rootfs_root = rootfs_root
        self._containers: dict[str, _Container] = {}
        self._images: dict[str, tuple[str, list[str]]] = {}
        self._image_lock = asyncio.Lock()
        self._closed = False
        self._init = init_binary() or ""

    @property
    def address(self) -> str:
        return f"crun ({self._state_root})"

    async def connect(self) -> CrunAPI:
        """Check the host can run this engine.

        Raises:
            SandboxUnavailable: `engine_unsupported`, saying what is missing.
        """
        reason = unsupported_reason()
        if reason is not None:
            raise SandboxUnavailable("engine_unsupported", f"{reason}; use engine='docker'")
        for directory in (self._state_root, self._crun_root):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        (MEMORY_CGROUP / CGROUP_PARENT).mkdir(exist_ok=True)
        for name in await self._blocking(_stale_states, self._state_root, self._crun_root):
            await self._crun("delete", "--force", name)
            await self._blocking(shutil.rmtree, self._crun_root / name, True)
        return self

    def unavailable(self, exc: BaseException) -> SandboxUnavailable:
        return SandboxUnavailable("docker_unavailable", f"the crun engine failed: {exc}")

    def translate(self, exc: Exception, *, image: str | None = None) -> SandboxUnavailable:
        if isinstance(exc, SandboxUnavailable):
            return exc
        return SandboxUnavailable("docker_error", f"{type(exc).__name__}: {exc}")

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def _image_root(self, image: str) -> tuple[str, list[str]]:
        """The exported root of `image` (exporting it the first time) and its Env."""
        async with self._image_lock:
            known = self._images.get(image)
            if known is not None:
                return known
            client = await self._docker.connect()
            try:
                info = await self._docker.call(client.inspect_image, image)
            except Exception as exc:
                raise self._docker.translate(exc, image=image) from None
            image_id = str(info["Id"]).removeprefix("sha256:")[:32]
            env = list((info.get("Config") or {}).get("Env") or [])
            root = self._rootfs_root / image_id
            if not (root / ".complete").exists():
                await self._export(client, image, root)
            self._images[image] = (str(root / "rootfs"), env)
            return self._images[image]

    async def _export(self, client: Any, image: str, root: Path) -> None:
        """Unpack the image's filesystem into `root/rootfs`, atomically."""
        created = await self._docker.call(client.create_container, image, command=["true"])
        try:
            await self._blocking(
                _unpack, functools.partial(client.export, created["Id"]), image, root
            )
        finally:
            await self._docker.call(client.remove_container, created["Id"], force=True)

    async def create(self, spec: dict[str, Any], name: str) -> str:
        """Write the container's bundle; nothing runs until `start`."""
        if self._closed:
            raise SandboxUnavailable("closed", "the sandbox engine is closed")
        rootfs, image_env = await self._image_root(str(spec["image"]))
        bundle = self._state_root / name
        memory = MEMORY_CGROUP / CGROUP_PARENT / name
        config = oci_spec(
            spec,
            rootfs=rootfs,
            image_env=image_env,
            init=self._init,
            cgroups_path=f"/{CGROUP_PARENT}/{name}/c",
        )
        limit = int(spec["host_config"].get("Memory") or 0)
        labels = dict(spec.get("labels") or {})
        container = _Container(
            name=name, bundle=bundle, memory_cgroup=memory, labels=labels, memory_limit=limit
        )
        self._containers[name] = container
        bundle.mkdir(mode=0o700)
        (bundle / "config.json").write_text(json.dumps(config))
        (bundle / "labels.json").write_text(json.dumps(labels))
        memory.mkdir(exist_ok=True)  # the parent of crun's cgroup: its high-water mark outlives it
        return name

    async def start(self, ref: str, *, image: str | None = None) -> None:
        container = self._containers.get(ref)
        if container is None:
            raise SandboxUnavailable("docker_error", f"no container {ref!r} to start")
        container.process = await asyncio.create_subprocess_exec(
            "crun",
            "--root",
            str(self._crun_root),
            "run",
            "--bundle",
            str(container.bundle),
            "--pid-file",
            str(container.bundle / "pid"),
            ref,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        container.reader = asyncio.get_running_loop().create_task(self._drain(container))

    async def _drain(self, container: _Container) -> None:
        """Keep the tail of the container's output; record its exit code."""
        process = container.process
        assert process is not None and process.stdout is not None
        while chunk := await process.stdout.read(65536):
            container.log += chunk
            del container.log[:-_LOG_TAIL]
        container.exit_code = await process.wait()

    def _pid(self, container: _Container) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((container.bundle / "pid").read_text())
        return None

    async def kill(self, ref: str) -> None:
        """SIGKILL the container's init: the kernel ends every process in its PID namespace."""
        container = self._containers.get(ref)
        if container is None or container.exit_code is not None:
            return
        container.killed = True
        pid = self._pid(container)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        elif container.process is not None:
            await self._crun("kill", ref, "KILL")

    async def _crun(self, *args: str) -> int:
        process = await asyncio.create_subprocess_exec(
            "crun",
            "--root",
            str(self._crun_root),
            *args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return await process.wait()

    async def remove(self, ref: str) -> None:
        """Kill, wait for crun to clean up, and delete the bundle and cgroup."""
        container = self._containers.pop(ref, None)
        if container is None:
            await self._remove_unknown(ref)
            return
        await self.kill(ref)
        if container.reader is not None:
            with contextlib.suppress(Exception):
                await container.reader
        elif container.process is not None:
            await container.process.wait()
        await self._blocking(_cleanup, container.bundle, container.name)

    async def _remove_unknown(self, ref: str) -> None:
        """A container another (dead) process started: crun's own delete, then its files."""
        bundle = self._state_root / ref
        if not bundle.exists():
            return
        await self._crun("delete", "--force", ref)
        await self._blocking(_cleanup, bundle, ref)

    async def state(self, ref: str) -> dict[str, Any] | None:
        """Docker-shaped `State`: Running, ExitCode, OOMKilled; None once removed."""
        container = self._containers.get(ref)
        if container is None:
            return None
        if container.exit_code is None:
            return {"Running": container.process is not None, "ExitCode": None, "OOMKilled": False}
        if container.oom_killed is None:
            container.oom_killed = _oom_killed(container)
        return {
            "Running": False,
            "ExitCode": container.exit_code,
            "OOMKilled": container.oom_killed,
        }

    async def wait_exit(self, ref: str, timeout_s: float) -> dict[str, Any] | None:
        container = self._containers.get(ref)
        if container is not None and container.reader is not None:
            with contextlib.suppress(TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(container.reader), timeout_s)
        return await self.state(ref)

    async def logs_tail(self, ref: str, lines: int = 20) -> str:
        container = self._containers.get(ref)
        if container is None:
            return ""
        text = bytes(container.log).decode("utf-8", "replace").strip()
        return "\n".join(text.splitlines()[-lines:])

    async def list(self, labels: list[str], *, all: bool = True) -> list[dict[str, Any]]:
        """Containers whose bundle carries every `key=value` label (this process's or not)."""
        wanted = dict(label.partition("=")[::2] for label in labels)
        found: list[dict[str, Any]] = []
        with contextlib.suppress(FileNotFoundError):
            for bundle in self._state_root.iterdir():
                try:
                    have = json.loads((bundle / "labels.json").read_text())
                except (OSError, ValueError):
                    continue
                if all_match(have, wanted):
                    found.append({"Id": bundle.name, "Labels": have})
        return found

    def close(self) -> None:
        self._closed = True


def _unpack(export: Callable[[], Any], image: str, root: Path) -> None:
    """Extract an exported filesystem (a tar stream) into `root/rootfs`, then mark it complete."""
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.with_name(f"{root.name}.{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "rootfs").mkdir(parents=True)
    with subprocess.Popen(
        ["tar", "-x", "--numeric-owner", "-C", str(staging / "rootfs")], stdin=subprocess.PIPE
    ) as tar:
        assert tar.stdin is not None
        for chunk in export():
            tar.stdin.write(chunk)
        tar.stdin.close()
        if tar.wait() != 0:
            raise RuntimeError(f"tar failed unpacking {image}")
    (staging / ".complete").touch()
    if root.exists():  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)
    else:
        staging.rename(root)


def all_match(have: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(have.get(key) == value for key, value in wanted.items())


def _oom_killed(container: _Container) -> bool:
    """Whether the memory limit killed the container's process.

    crun deletes the container's cgroup, and with it cgroup v1's OOM count, as
    soon as the process is gone; the parent cgroup this engine made for it
    keeps the high-water mark of the memory charged below it. A SIGKILL we did
    not send, with memory at the limit, is the OOM killer's.
    """
    if container.killed or container.exit_code != 128 + signal.SIGKILL:
        return False
    if not container.memory_limit:
        return False
    try:
        peak = int((container.memory_cgroup / "memory.max_usage_in_bytes").read_text())
    except (OSError, ValueError):
        return False
    slack = max(2 * 1024 * 1024, container.memory_limit // 100)  # charges come in batches
    return peak >= container.memory_limit - slack


def _stale_states(state_root: Path, crun_root: Path) -> list[str]:
    """crun state with no bundle beside it: a crun run cut short (a bundle lives longer)."""
    try:
        names = [entry.name for entry in crun_root.iterdir() if entry.is_dir()]
    except FileNotFoundError:
        return []
    return [name for name in names if not (state_root / name).exists()]


def _cleanup(bundle: Path, name: str) -> None:
    """Delete the bundle and this container's cgroups in every hierarchy (crun leaves parents)."""
    shutil.rmtree(bundle, ignore_errors=True)
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        parent = hierarchy / CGROUP_PARENT / name
        if not parent.is_dir():
            continue
        # a cgroup empties a moment after its last process exits
        for _ in range(200):
            try:
                for child in [entry for entry in parent.iterdir() if entry.is_dir()]:
                    child.rmdir()
                parent.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.002)
