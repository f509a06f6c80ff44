"""`reap(owner=...)` looks only at that owner's containers, whatever else the engine holds."""

from __future__ import annotations

import socket
import subprocess
from typing import Any

from runtime.sandbox.hardening import LABEL, LABEL_OWNER
from runtime.sandbox.reaper import owner_id, reap


def _dead_owner() -> str:
    child = subprocess.Popen(["true"])
    child.wait()
    return f"{socket.gethostname()}/{child.pid}/1"


class FakeDocker:
    """Answers `list` with every container it holds, as an engine that ignored the filter would."""

    def __init__(self, containers: dict[str, str]) -> None:
        self.containers = containers  # id -> owner
        self.filters: list[list[str]] = []
        self.removed: list[str] = []

    async def list(self, labels: list[str], *, all: bool = True) -> list[dict[str, Any]]:
        self.filters.append(labels)
        return [
            {"Id": cid, "Labels": {LABEL: "1", LABEL_OWNER: owner}}
            for cid, owner in self.containers.items()
        ]

    async def remove(self, ref: str) -> None:
        self.removed.append(ref)

    def translate(self, exc: BaseException) -> BaseException:
        return exc


async def test_an_owner_scoped_reap_leaves_other_owners_orphans() -> None:
    mine, theirs = _dead_owner(), _dead_owner()
    api = FakeDocker({"a": mine, "b": theirs, "c": owner_id(), "d": "another-host/1/1"})
    removed = await reap(api, owner=mine)  # type: ignore[arg-type]
    assert removed == ["a"]
    assert api.filters == [[f"{LABEL}=1", f"{LABEL_OWNER}={mine}"]]


async def test_everything_with_an_owner_is_all_of_that_owners_only() -> None:
    api = FakeDocker({"live": owner_id(), "dead": _dead_owner(), "far": "another-host/1/1"})
    assert await reap(api, everything=True, owner=owner_id()) == ["live"]  # type: ignore[arg-type]
    assert sorted(await reap(FakeDocker(api.containers))) == ["dead"]  # type: ignore[arg-type]
