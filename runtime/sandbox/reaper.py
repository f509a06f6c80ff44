"""Remove sandbox containers whose owning process is gone.

Every container carries `agentrt.owner=<hostname>/<pid>/<process start time>`.
A container is an orphan when its owner ran on this host and that process no
longer exists (the start time guards against a reused pid). Containers owned
by live processes, or by other hosts sharing the engine, are left alone unless
the caller asks for all of them. A reap can be limited to one owner, so that
cleaning up after one process never touches what others left on a shared
engine.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import socket
from pathlib import Path
from typing import Any

from runtime.sandbox.containers import ContainerEngine
from runtime.sandbox.hardening import LABEL, LABEL_OWNER

log = logging.getLogger(__name__)


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            data = handle.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = data[data.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


@functools.cache
def owner_id() -> str:
    """This process's owner label value."""
    pid = os.getpid()
    return f"{socket.gethostname()}/{pid}/{_start_ticks(pid) or '0'}"


def channel_prefix() -> str:
    """Prefix of this process's socket directories, so a later reaper knows their owner."""
    pid = os.getpid()
    return f"{pid}.{_start_ticks(pid) or '0'}-"


def reap_channel_dirs(root: Path) -> int:
    """Remove socket directories under `root` left by dead processes; return how many."""
    removed = 0
    try:
        entries = list(root.iterdir())
    except OSError:
        return 0
    for entry in entries:
        owner, dash, _ = entry.name.partition("-")
        pid, dot, ticks = owner.partition(".")
        if not (dash and dot and pid.isdigit()) or _start_ticks(int(pid)) == ticks:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    return removed


def owner_alive(owner: str | None) -> bool | None:
    """Whether the process that owns a container still runs; None when unknowable here.

    Args:
        owner: The `agentrt.owner` label value.
    """
    if not owner:
        return None
    host, _, rest = owner.partition("/")
    pid_text, _, ticks = rest.partition("/")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    current = _start_ticks(int(pid_text))
    return current is not None and current == ticks


def _is_orphan(container: dict[str, Any], everything: bool, only_owner: str | None) -> bool:
    labels = container.get("Labels") or {}
    owner = labels.get(LABEL_OWNER)
    if only_owner is not None and owner != only_owner:
        return False
    if owner == owner_id():
        return everything
    return everything or owner_alive(owner) is False


async def reap(
    api: ContainerEngine, *, everything: bool = False, owner: str | None = None
) -> list[str]:
    """Remove this runtime's orphaned containers, in any state (Created ones included).

    Args:
        api: The Docker connection (or the crun engine).
        everything: Remove every container labelled by this runtime, even ones
            a live process owns. Only for when no runtime process is running.
        owner: Only containers with this `agentrt.owner` label value (one
            process's, as `owner_id()` wrote it in that process); with
            `everything`, all of that owner's, alive or not.

    Returns:
        The ids of the removed containers.

    Raises:
        SandboxUnavailable: The daemon cannot be reached.
    """
    labels = [f"{LABEL}=1"] + ([f"{LABEL_OWNER}={owner}"] if owner is not None else [])
    try:
        found = await api.list(labels, all=True)
    except Exception as exc:
        raise api.translate(exc) from None
    removed: list[str] = []
    for container in found:
        if not _is_orphan(container, everything, owner):
            continue
        container_id = str(container.get("Id"))
        try:
            await api.remove(container_id)
        except Exception as exc:
            log.warning("could not remove orphaned sandbox %s: %s", container_id[:12], exc)
            continue
        removed.append(container_id)
    if removed:
        log.info("removed %d orphaned sandbox container(s)", len(removed))
    return removed
