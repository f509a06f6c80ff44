"""How a stdio MCP server is started: `docker run -i` with the sandbox's hardening.

The flags come from `runtime.sandbox.hardening.hardened_host_config`, the
same settings every tool container gets (non-root, no capabilities,
no-new-privileges, read-only root with a small tmpfs, no network unless
granted, memory/pids/CPU limits, ulimits, an init process, capped logs), and
the same ownership labels, so `agentrt sandbox reap` removes a container an
exited process left behind. A setting the translation does not know is an
error, never silently dropped.
"""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path
from typing import Any

from runtime.mcp.config import StdioServer
from runtime.sandbox.hardening import (
    LABEL,
    LABEL_EXECUTOR,
    LABEL_OWNER,
    LABEL_POOL,
    SANDBOX_USER,
    BindMount,
    SandboxLimits,
    hardened_host_config,
    user_mount,
)
from runtime.sandbox.reaper import owner_id

__all__ = ["LaunchError", "container_name", "docker_run_args", "host_config_flags", "server_mounts"]

EXECUTOR_LABEL_VALUE = "mcp"


class LaunchError(ValueError):
    """A server's sandbox settings cannot be honoured (a bad mount, an unknown setting)."""


def container_name(server_id: str) -> str:
    """A fresh container name for one start of a server."""
    return f"agentrt-mcp-{server_id.lower()}-{secrets.token_hex(4)}"


def server_mounts(server: StdioServer, workspace: str | None) -> tuple[BindMount, ...]:
    """The server's mounts, checked by the same rules as tool mounts.

    Raises:
        LaunchError: A mount is refused, or `workspace: true` without a workspace.
    """
    from runtime.sandbox.hardening import SandboxConfigError

    mounts: list[BindMount] = []
    try:
        if server.workspace:
            if workspace is None:
                raise LaunchError("workspace: true, but no --workspace was given")
            mounts.append(user_mount(str(Path(workspace).resolve()), "/workspace"))
        mounts.extend(user_mount(m.source, m.target, m.read_only) for m in server.mounts)
    except SandboxConfigError as exc:
        raise LaunchError(str(exc)) from None
    return tuple(mounts)


def docker_run_args(
    server_id: str,
    server: StdioServer,
    *,
    name: str,
    network: bool,
    mounts: tuple[BindMount, ...],
    limits: SandboxLimits | None = None,
) -> list[str]:
    """Arguments for the `docker` CLI: `run -i` of the server's command, hardened.

    Args:
        server_id: The server's id (a label, so the reaper and humans can tell).
        server: Its configuration.
        name: The container name.
        network: Whether the server asked for network access and the policy granted it.
        mounts: Checked bind mounts (`server_mounts`).
        limits: Defaults for memory, CPU, pids...; the server's own settings win.
    """
    base = limits or SandboxLimits()
    limits = dataclasses.replace(
        base,
        memory=server.memory or base.memory,
        cpus=server.cpus or base.cpus,
        pids_limit=server.pids_limit or base.pids_limit,
    )
    labels = {
        LABEL: "1",
        LABEL_OWNER: owner_id(),
        LABEL_EXECUTOR: EXECUTOR_LABEL_VALUE,
        LABEL_POOL: f"mcp-{server_id}",
    }
    args = ["run", "-i", "--name", name, "--user", SANDBOX_USER, "--hostname", "sandbox"]
    args += ["--workdir", "/tmp", "-e", "HOME=/tmp", "-e", "LANG=C.UTF-8"]
    for key, value in labels.items():
        args += ["--label", f"{key}={value}"]
    args += host_config_flags(hardened_host_config(limits, network=network, mounts=mounts))
    return [*args, server.image, server.command, *server.args]


def host_config_flags(config: dict[str, Any]) -> list[str]:
    """Translate a Docker API `HostConfig` into `docker run` flags.

    Raises:
        LaunchError: A key this translation does not know (a new hardening
            setting must be translated here, not dropped).
    """
    flags: list[str] = []
    for key, value in config.items():
        if key == "Mounts":
            for mount in value:
                spec = f"type=bind,source={mount['Source']},target={mount['Target']}"
                if mount.get("ReadOnly"):
                    spec += ",readonly"
                propagation = (mount.get("BindOptions") or {}).get("Propagation")
                if propagation:
                    spec += f",bind-propagation={propagation}"
                flags += ["--mount", spec]
        elif key == "NetworkMode":
            flags += ["--network", value]
        elif key == "ReadonlyRootfs":
            flags += ["--read-only"] if value else []
        elif key == "Tmpfs":
            for path, options in value.items():
                flags += ["--tmpfs", f"{path}:{options}"]
        elif key == "IpcMode":
            flags += ["--ipc", value]
        elif key == "Memory":
            flags += ["--memory", f"{value}b"]
        elif key == "MemorySwap":
            flags += ["--memory-swap", f"{value}b"]
        elif key == "NanoCpus":
            flags += ["--cpus", f"{value / 1e9:g}"]
        elif key == "PidsLimit":
            flags += ["--pids-limit", str(value)]
        elif key == "CapDrop":
            for capability in value:
                flags += ["--cap-drop", capability]
        elif key == "SecurityOpt":
            for option in value:
                flags += ["--security-opt", option]
        elif key == "Ulimits":
            for limit in value:
                flags += ["--ulimit", f"{limit['Name']}={limit['Soft']}:{limit['Hard']}"]
        elif key == "Init":
            flags += ["--init"] if value else []
        elif key == "LogConfig":
            flags += ["--log-driver", value["Type"]]
            for option, setting in value.get("Config", {}).items():
                flags += ["--log-opt", f"{option}={setting}"]
        elif key == "Privileged":
            if value:
                raise LaunchError("a privileged MCP server container is never started")
        elif key == "AutoRemove":
            flags += ["--rm"] if value else []
        else:
            raise LaunchError(f"host setting {key!r} has no docker run flag here; add one")
    return flags
