"""The reaper removes containers orphaned by dead processes, and only those.

Needs a running Docker engine and the sandbox image (`agentrt sandbox build-image`).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from runtime.sandbox.hardening import LABEL, LABEL_EXECUTOR, LABEL_OWNER, default_image
from runtime.sandbox.reaper import owner_alive, owner_id
from tests.conftest import docker_unavailable

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    try:
        import docker

        client = docker.from_env(version="auto")
        client.images.get(default_image())
    except Exception as exc:
        docker_unavailable(exc)
    yield client
    client.close()


@pytest.fixture
def marker(client: Any) -> Iterator[str]:
    """A label value unique to one test; whatever it labelled is force-removed afterwards."""
    value = f"reaper-test-{uuid.uuid4().hex[:12]}"
    yield value
    for container in client.containers.list(
        all=True, filters={"label": f"{LABEL_EXECUTOR}={value}"}
    ):
        container.remove(force=True)


def _dead_owner() -> str:
    # a pid that just exited, with a start time no live process has
    child = subprocess.Popen(["true"])
    child.wait()
    return f"{socket.gethostname()}/{child.pid}/1"


def _create(client: Any, marker: str, owner: str, *, run: bool = False) -> Any:
    labels = {LABEL: "1", LABEL_OWNER: owner, LABEL_EXECUTOR: marker}
    container = client.containers.create(
        default_image(), ["true"], labels=labels, network_mode="none"
    )
    if run:
        container.start()
        container.wait(timeout=30)
    return container


def _ids(client: Any, marker: str) -> set[str]:
    return {
        c.id
        for c in client.containers.list(all=True, filters={"label": f"{LABEL_EXECUTOR}={marker}"})
    }


def test_owner_alive_reads_pid_and_start_time() -> None:
    assert owner_alive(owner_id()) is True
    assert owner_alive(_dead_owner()) is False
    assert owner_alive("another-host/1/1") is None
    assert owner_alive(None) is None


def test_reap_removes_orphans_in_any_state_and_spares_the_rest(client: Any, marker: str) -> None:
    from runtime.sandbox.containers import DockerAPI
    from runtime.sandbox.reaper import reap

    created = _create(client, marker, _dead_owner())  # stuck in Created
    exited = _create(client, marker, _dead_owner(), run=True)
    live = _create(client, marker, owner_id())
    foreign = _create(client, marker, "another-host/1/1")
    assert client.containers.get(created.id).status == "created"

    async def run() -> list[str]:
        api = DockerAPI()
        try:
            return await reap(api)
        finally:
            api.close()

    removed = asyncio.run(run())
    assert {created.id, exited.id} <= set(removed)
    assert _ids(client, marker) == {live.id, foreign.id}


def test_cli_reap_prints_what_it_removed(
    client: Any, marker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from runtime.cli import main

    orphan = _create(client, marker, _dead_owner())
    assert main(["sandbox", "reap", "--json"]) == 0
    assert orphan.id in json.loads(capsys.readouterr().out)["removed"]
    assert not _ids(client, marker)


def test_cli_reap_with_the_daemon_down(capsys: pytest.CaptureFixture[str]) -> None:
    from runtime.cli import main

    code = main(["sandbox", "reap", "--docker-host", "unix:///nonexistent/agentrt.sock"])
    assert code == 1
    assert "dockerd" in capsys.readouterr().err


def test_executor_reaps_orphans_when_it_starts(
    client: Any, marker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runtime.sandbox import docker_executor
    from runtime.sandbox.docker_executor import DockerExecutor

    monkeypatch.setattr(docker_executor, "_reaped", set())  # as in a fresh process
    orphan = _create(client, marker, _dead_owner())

    async def run() -> None:
        async with DockerExecutor(pool_size=0) as ex:
            assert ex.stats()["pools"] == []
            deadline = time.monotonic() + 30
            # the reaper runs in the background; its only trace is Docker's state
            while orphan.id in _ids(client, marker) and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)

    asyncio.run(run())
    assert orphan.id not in _ids(client, marker)
