"""Pinning MCP tool definitions: a lock file of SHA-256 digests, and what changed since.

A tool's definition is its name, description and input schema; its pin is
the SHA-256 of their canonical JSON. `agentrt mcp pin` writes the lock file
(`mcp.lock` next to `mcp.yaml`) with each pinned definition, so `agentrt mcp
diff` can say *what* changed, not only that something did. At start-up a
tool is offered only when the server publishes exactly the pinned definition;
a changed, new or unpinned tool is refused with a reason naming the change.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "Definition",
    "Lock",
    "LockError",
    "PinCheck",
    "check_pins",
    "describe_change",
]

LOCK_VERSION = 1


class LockError(ValueError):
    """The lock file cannot be read; the message says which file and why."""


@dataclasses.dataclass(frozen=True, slots=True)
class Definition:
    """What a server publishes about one tool, and what a pin covers."""

    name: str
    description: str
    input_schema: dict[str, Any]

    @property
    def sha256(self) -> str:
        canonical = json.dumps(
            {"name": self.name, "description": self.description, "input_schema": self.input_schema},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Definition:
        return cls(str(data["name"]), str(data["description"]), dict(data["input_schema"]))


@dataclasses.dataclass
class Lock:
    """Pinned definitions per server id."""

    servers: dict[str, dict[str, Definition]] = dataclasses.field(default_factory=dict)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Lock:
        """The lock at `path`; an absent file is an empty lock (nothing pinned yet).

        Raises:
            LockError: The file exists but is not a lock this runtime wrote, or a
                pinned definition no longer matches its own recorded digest.
        """
        source = Path(path)
        if not source.exists():
            return cls()
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
            if data.get("version") != LOCK_VERSION:
                raise LockError(f"{source}: unknown lock version {data.get('version')!r}")
            servers: dict[str, dict[str, Definition]] = {}
            for server_id, tools in data["servers"].items():
                servers[server_id] = {}
                for name, entry in tools.items():
                    definition = Definition.from_dict(entry)
                    if definition.sha256 != entry.get("sha256"):
                        raise LockError(
                            f"{source}: the pinned definition of {server_id}.{name} does not "
                            f"match its digest (edited by hand?); re-pin with `agentrt mcp pin`"
                        )
                    servers[server_id][name] = definition
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            if isinstance(exc, LockError):
                raise
            raise LockError(f"{source} is not a readable MCP lock file: {exc}") from None
        return cls(servers)

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the lock atomically (a reader never sees half a file)."""
        target = Path(path)
        payload = {
            "version": LOCK_VERSION,
            "servers": {
                server_id: {name: d.to_dict() for name, d in sorted(tools.items())}
                for server_id, tools in sorted(self.servers.items())
            },
        }
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        os.replace(temporary, target)


@dataclasses.dataclass(frozen=True, slots=True)
class PinCheck:
    """One tool's standing against the lock.

    Attributes:
        name: The tool's name on its server.
        state: `pinned` (offered), `changed`, `new` (not pinned), `removed`
            (pinned but no longer published).
        reason: Why it is refused, naming the change; empty when pinned.
        definition: What the server publishes now (None when removed).
    """

    name: str
    state: str
    reason: str = ""
    definition: Definition | None = None

    @property
    def offered(self) -> bool:
        return self.state == "pinned"


def check_pins(
    server_id: str, live: Mapping[str, Definition], pinned: Mapping[str, Definition] | None
) -> list[PinCheck]:
    """Compare what a server publishes with its pins; sorted by tool name."""
    pinned = pinned or {}
    checks: list[PinCheck] = []
    for name in sorted(set(live) | set(pinned)):
        now, then = live.get(name), pinned.get(name)
        qualified = f"{server_id}.{name}"
        if now is None:
            checks.append(
                PinCheck(
                    name, "removed", f"{qualified} is pinned but the server no longer offers it"
                )
            )
        elif then is None:
            checks.append(
                PinCheck(
                    name,
                    "new",
                    f"{qualified} is not pinned: review it with `agentrt mcp diff`, then pin it "
                    f"with `agentrt mcp pin`",
                    now,
                )
            )
        elif now.sha256 != then.sha256:
            checks.append(
                PinCheck(
                    name,
                    "changed",
                    f"the definition of {qualified} changed since it was pinned "
                    f"({describe_change(then, now)}); review it with `agentrt mcp diff` and "
                    f"re-pin with `agentrt mcp pin`",
                    now,
                )
            )
        else:
            checks.append(PinCheck(name, "pinned", "", now))
    return checks


def describe_change(before: Definition, after: Definition) -> str:
    """A short sentence on what differs between two definitions of one tool."""
    parts: list[str] = []
    if before.description != after.description:
        parts.append("description changed")
    if before.input_schema != after.input_schema:
        old_props = set((before.input_schema.get("properties") or {}).keys())
        new_props = set((after.input_schema.get("properties") or {}).keys())
        detail = []
        if new_props - old_props:
            detail.append("added " + ", ".join(sorted(new_props - old_props)))
        if old_props - new_props:
            detail.append("removed " + ", ".join(sorted(old_props - new_props)))
        changed = sorted(
            name
            for name in old_props & new_props
            if before.input_schema["properties"][name] != after.input_schema["properties"][name]
        )
        if changed:
            detail.append("changed " + ", ".join(changed))
        if before.input_schema.get("required") != after.input_schema.get("required"):
            detail.append("required changed")
        parts.append("input schema changed" + (f": {'; '.join(detail)}" if detail else ""))
    return "; ".join(parts) or "no change"
