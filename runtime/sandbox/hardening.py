"""What every sandbox container is created with, and which settings a tool may change.

The defaults are the strongest this runtime offers: non-root user, no
capabilities, no-new-privileges, Docker's default seccomp profile, no network,
a read-only root with a size-limited tmpfs, pids/memory/CPU limits, ulimits,
an init process, capped logs and ownership labels. A tool may change only
memory, cpus, pids, tmpfs size, image, extra mounts and (with policy consent)
network, through `@tool(sandbox=...)`.

Everything here is plain data and pure functions, so the settings can be read
and tested without a Docker engine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import posixpath
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runtime.calls import CallContext
from runtime.sandbox.worker import CHANNEL_DIR, LIB_DIR, MODS_DIR
from runtime.tools import Tool

# Decides whether a tool that asks for the network gets it for one call.
NetworkHook = Callable[[Tool, CallContext], bool]


def deny_network(tool: Tool, context: CallContext) -> bool:
    """A network hook that never grants network access."""
    return False


def granted_by_policy(tool: Tool, context: CallContext) -> bool:
    """The default network hook: the call's policy decision granted `network`."""
    return "network" in context.grants


DEFAULT_IMAGE = "agentrt-sandbox:latest"
IMAGE_ENV = "AGENTRT_SANDBOX_IMAGE"
SANDBOX_USER = "65534:65534"  # nobody:nogroup, present in every Debian image
LABEL = "agentrt.sandbox"
LABEL_OWNER = "agentrt.owner"
LABEL_EXECUTOR = "agentrt.executor"
LABEL_POOL = "agentrt.pool"
WORKER_PATH = f"{LIB_DIR}/runtime/sandbox/worker.py"
_FORBIDDEN_TARGETS = ("/opt/agentrt", CHANNEL_DIR, "/proc", "/sys", "/dev", "/tmp")
_FORBIDDEN_SOURCES = ("/var/run/docker.sock", "/run/docker.sock", "/proc", "/sys", "/dev")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


class SandboxConfigError(ValueError):
    """A tool's sandbox settings cannot be honoured (a bad mount, an unloadable module)."""


@dataclasses.dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Executor-wide defaults; memory, cpus, pids_limit and tmpfs_size are per-tool overridable.

    Attributes:
        memory: Memory limit, also the memory+swap limit (so no swap), e.g. "512m".
        cpus: CPU quota in cores.
        pids_limit: Processes and threads the container may hold (fork bombs stop here).
        tmpfs_size: Size of the only writable path, `/tmp`.
        nofile: Open-file limit (soft = hard).
        fsize_bytes: Largest file the tool may write; past it the kernel sends SIGXFSZ.
        cpu_seconds: CPU-time limit per process, a backstop should the host die mid-call.
        log_max_size: Cap of the container's own log (the worker's crash messages).
    """

    memory: str = "512m"
    cpus: float = 1.0
    pids_limit: int = 64
    tmpfs_size: str = "64m"
    nofile: int = 256
    fsize_bytes: int = 32 * 1024 * 1024
    cpu_seconds: int = 600
    log_max_size: str = "1m"


@dataclasses.dataclass(frozen=True, slots=True)
class BindMount:
    """A host path visible in the container."""

    source: str
    target: str
    read_only: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class ToolModule:
    """How the worker finds the tool's module.

    Attributes:
        name: Import name (`tools.calculator`, or the name a file was loaded under).
        file: In-container path when the module is a single file loaded by path.
        mount: The host package directory or file to mount; None for `runtime.*`.
    """

    name: str
    file: str | None
    mount: BindMount | None


@dataclasses.dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Everything a container is created with; equal configs can share a warm pool."""

    image: str
    limits: SandboxLimits
    network: bool
    mounts: tuple[BindMount, ...]
    module: ToolModule

    @property
    def key(self) -> str:
        """A short stable digest, used as the pool key and a container label."""
        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]


def parse_size(text: str) -> int:
    """Turn "512m", "1g", "64MiB" or "1048576" into bytes.

    Raises:
        SandboxConfigError: The text is not a size.
    """
    match = _SIZE_RE.match(text)
    if not match:
        raise SandboxConfigError(f"{text!r} is not a size; write e.g. '256m' or '1g'")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def default_image() -> str:
    """The image named by $AGENTRT_SANDBOX_IMAGE, else `agentrt-sandbox:latest`."""
    return os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE


def runtime_dir() -> Path:
    """The host directory of the `runtime` package, mounted read-only in every container."""
    return Path(__file__).resolve().parent.parent


def resolve_config(
    tool: Tool,
    *,
    defaults: SandboxLimits,
    image: str,
    network: bool,
    extra_mounts: tuple[BindMount, ...] = (),
) -> SandboxConfig:
    """Merge a tool's `SandboxSpec` over the executor defaults.

    Args:
        tool: The tool about to run.
        defaults: The executor's limits.
        image: The executor's image, used unless the tool names its own.
        network: Whether network access was both asked for and allowed.
        extra_mounts: Executor-wide mounts (e.g. the agent's workspace).

    Raises:
        SandboxConfigError: A mount or the tool's module cannot be made available.
    """
    spec = tool.sandbox
    limits = dataclasses.replace(
        defaults,
        memory=spec.memory or defaults.memory,
        cpus=spec.cpus or defaults.cpus,
        pids_limit=spec.pids_limit or defaults.pids_limit,
        tmpfs_size=spec.tmpfs_size or defaults.tmpfs_size,
    )
    parse_size(limits.memory)
    parse_size(limits.tmpfs_size)
    mounts = extra_mounts + tuple(_user_mount(m.source, m.target, m.read_only) for m in spec.mounts)
    return SandboxConfig(
        image=spec.image or image,
        limits=limits,
        network=network,
        mounts=mounts,
        module=tool_module(tool),
    )


def user_mount(source: str, target: str, read_only: bool = True) -> BindMount:
    """Check a requested mount against the sandbox's rules (public for executor-wide mounts)."""
    return _user_mount(source, target, read_only)


def _user_mount(source: str, target: str, read_only: bool) -> BindMount:
    host = Path(source).expanduser()
    if not host.is_absolute():
        raise SandboxConfigError(f"mount source {source!r} must be an absolute path")
    host = host.resolve()
    if not host.exists():
        raise SandboxConfigError(f"mount source {source!r} does not exist")
    if str(host) == "/" or any(_under(str(host), bad) for bad in _FORBIDDEN_SOURCES):
        raise SandboxConfigError(f"mounting {source!r} into a sandbox is not allowed")
    clean = posixpath.normpath(target)
    if not clean.startswith("/") or clean == "/":
        raise SandboxConfigError(f"mount target {target!r} must be an absolute path below /")
    if any(_under(clean, bad) or _under(bad, clean) for bad in _FORBIDDEN_TARGETS):
        raise SandboxConfigError(f"mount target {target!r} overlaps a path the sandbox reserves")
    return BindMount(str(host), clean, read_only)


def _under(path: str, root: str) -> bool:
    # "/workspace-evil".startswith("/workspace") is true; compare whole components
    return path == root or path.startswith(root.rstrip("/") + "/")


def tool_module(tool: Tool) -> ToolModule:
    """Work out what to mount so the worker can import the tool's module.

    A module inside a package (`tools.calculator`) gets its top-level package
    directory mounted under /opt/agentrt/mods and is imported by name; a module
    that is a single file (a path the CLI loaded, or a script's `__main__`) gets
    that one file mounted and is loaded by path. `runtime.*` needs no mount.

    Raises:
        SandboxConfigError: The tool has no source file to mount.
    """
    name = tool.module_name
    top = name.partition(".")[0]
    if top == "runtime":
        return ToolModule(name=name, file=None, mount=None)
    if not tool.module_file:
        raise SandboxConfigError(
            f"tool {tool.name!r} is defined in {name!r}, which has no source file; "
            f"define sandboxed tools in a .py file or a package"
        )
    source = Path(tool.module_file).resolve()
    package = sys.modules.get(top)
    package_paths = [Path(p).resolve() for p in getattr(package, "__path__", None) or []]
    if "." in name and package_paths:
        # a namespace package may span several directories: mount the one holding the file
        roots = [p for p in package_paths if _under(str(source), str(p))]
        if not roots:
            raise SandboxConfigError(f"tool {tool.name!r}: {source} is not inside package {top!r}")
        root = roots[0]
        # The worker pre-imports the top-level package, and each call names its
        # submodule: every tool of one package shares a warm pool.
        return ToolModule(name=top, file=None, mount=BindMount(str(root), f"{MODS_DIR}/{top}"))
    safe = re.sub(r"[^A-Za-z0-9_]", "_", name) or "tool_module"
    target = f"{MODS_DIR}/{safe}.py"
    load_name = "__agentrt_main__" if name == "__main__" else name
    return ToolModule(name=load_name, file=target, mount=BindMount(str(source), target))


def container_labels(config: SandboxConfig, *, owner: str, executor_id: str) -> dict[str, str]:
    """Labels that tie a container to this runtime, its process and its pool."""
    return {
        LABEL: "1",
        LABEL_OWNER: owner,
        LABEL_EXECUTOR: executor_id,
        LABEL_POOL: config.key,
    }


def host_config(config: SandboxConfig, *, channel_dir: str) -> dict[str, Any]:
    """The Docker API `HostConfig` for one sandbox container.

    Args:
        config: The resolved settings.
        channel_dir: Host directory holding the worker's unix socket.
    """
    mounts = [
        _mount(BindMount(str(runtime_dir()), f"{LIB_DIR}/runtime")),
        # read-only still lets the worker connect(): sockets ignore the mount's ro flag
        _mount(BindMount(channel_dir, CHANNEL_DIR)),
    ]
    if config.module.mount is not None:
        mounts.append(_mount(config.module.mount))
    mounts.extend(_mount(m) for m in config.mounts)
    return {"Mounts": mounts, **hardened_host_config(config.limits, network=config.network)}


def hardened_host_config(
    limits: SandboxLimits, *, network: bool, mounts: tuple[BindMount, ...] = ()
) -> dict[str, Any]:
    """The `HostConfig` hardening every sandbox container gets (tool workers, MCP servers).

    Args:
        limits: Memory, CPU, pids, tmpfs and ulimit settings.
        network: Whether network access was both asked for and allowed.
        mounts: Bind mounts to add (`Mounts` is left out when there are none).
    """
    memory = parse_size(limits.memory)
    hardened: dict[str, Any] = {"Mounts": [_mount(m) for m in mounts]} if mounts else {}
    hardened.update(
        {
            "NetworkMode": "bridge" if network else "none",
            "ReadonlyRootfs": True,
            "Tmpfs": {
                "/tmp": f"rw,nosuid,nodev,noexec,size={parse_size(limits.tmpfs_size)},mode=1777"
            },
            "IpcMode": "none",  # no /dev/shm: /tmp stays the only writable place
            "Memory": memory,
            "MemorySwap": memory,  # equal: no swap, so the limit bites as an OOM kill
            "NanoCpus": int(limits.cpus * 1e9),
            "PidsLimit": limits.pids_limit,
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges"],  # Docker's default seccomp stays on
            "Ulimits": [
                {"Name": "nofile", "Soft": limits.nofile, "Hard": limits.nofile},
                {"Name": "fsize", "Soft": limits.fsize_bytes, "Hard": limits.fsize_bytes},
                {"Name": "cpu", "Soft": limits.cpu_seconds, "Hard": limits.cpu_seconds},
                {"Name": "core", "Soft": 0, "Hard": 0},
            ],
            "Init": True,
            "LogConfig": {
                "Type": "json-file",
                "Config": {"max-size": limits.log_max_size, "max-file": "1"},
            },
            "Privileged": False,
            # removal races with reading the exit state; remove explicitly
            "AutoRemove": False,
        }
    )
    return hardened


def container_spec(
    config: SandboxConfig, *, channel_dir: str, labels: dict[str, str]
) -> dict[str, Any]:
    """Keyword arguments for `docker.APIClient.create_container`."""
    return {
        "image": config.image,
        "command": ["python3", "-I", WORKER_PATH],
        "user": SANDBOX_USER,
        # nothing from the host's environment; arguments never travel in argv or env
        "environment": {"HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"},
        "working_dir": "/tmp",
        "hostname": "sandbox",
        "labels": labels,
        "host_config": host_config(config, channel_dir=channel_dir),
        "stdin_open": False,
        "tty": False,
    }


def _mount(mount: BindMount) -> dict[str, Any]:
    return {
        "Type": "bind",
        "Source": mount.source,
        "Target": mount.target,
        "ReadOnly": mount.read_only,
        "BindOptions": {"Propagation": "rprivate"},
    }
