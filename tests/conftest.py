"""Shared fixtures: the scripted model server and capture loading."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.testing import ScriptedServer

FIXTURES = Path(__file__).parent / "fixtures"


def load_captures(name: str, file: str = "vllm_captures.jsonl") -> list[dict[str, Any]]:
    """Real server request/response pairs: vLLM on a GPU host, llama.cpp on this machine."""
    with (FIXTURES / file).open() as handle:
        rows = [json.loads(line) for line in handle]
    found = [row for row in rows if row["name"] == name]
    assert found, f"no capture named {name}"
    return found


@pytest.fixture
def scripted_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server URL: `$AGENTRT_TEST_POSTGRES`, else a temporary cluster.

    `scripts/test.sh` starts one (and exports the variable) when none runs; a
    run of pytest alone starts its own from the machine's server binaries. A
    machine without them fails these tests, saying how to install them.
    """
    import os

    from runtime.testing.postgres import PostgresNotInstalled, TemporaryPostgres

    given = os.environ.get("AGENTRT_TEST_POSTGRES")
    if given:
        yield given
        return
    try:
        server = TemporaryPostgres().start()
    except (PostgresNotInstalled, RuntimeError, OSError) as exc:
        pytest.fail(
            f"PostgreSQL tests need a server: run scripts/test.sh (starts one), or set "
            f"AGENTRT_TEST_POSTGRES=postgresql://...: {exc}",
            pytrace=False,
        )
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    import contextlib

    from runtime.testing.postgres import create_database, drop_database

    url = create_database(postgres_server)
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):
            drop_database(url)


def docker_unavailable(exc: BaseException) -> None:
    """Fail a Docker test loudly: a missing engine is a broken set-up, not a pass.

    `scripts/test.sh` starts dockerd and builds the image. On a machine that
    cannot run Docker, AGENTRT_NO_DOCKER=1 deselects the Docker tests (they
    show as deselected in the summary, never as passed).
    """
    pytest.fail(
        f"Docker tests need a running engine and the sandbox image "
        f"(run scripts/test.sh, or `agentrt sandbox build-image`): {exc}",
        pytrace=False,
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import os

    skipped_markers = {
        marker
        for marker, env in (("docker", "AGENTRT_NO_DOCKER"), ("model", "AGENTRT_NO_MODEL"))
        if os.environ.get(env) == "1"
    }
    if not skipped_markers:
        return
    kept, deselected = [], []
    for item in items:
        if any(item.get_closest_marker(marker) for marker in skipped_markers):
            deselected.append(item)
        else:
            kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@pytest.fixture(scope="session")
def no_sandbox_container_survives() -> Iterator[None]:
    """After the suite, `docker ps -a` shows none of this process's sandbox containers."""
    import docker

    from runtime.sandbox.hardening import LABEL_OWNER, default_image
    from runtime.sandbox.reaper import owner_id

    try:
        client = docker.from_env(version="auto")
        client.images.get(default_image())
    except Exception as exc:
        docker_unavailable(exc)
    yield
    left = client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={owner_id()}"})
    client.close()
    assert not left, f"containers leaked: {[c.name for c in left]}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: every extra the tests need is installed there.

    `pytest.importorskip` keeps the suite usable on a machine without the
    fine-tuning or retrieval extras; in CI (CI=true, or AGENTRT_NO_SKIPS=1) a
    skip means the set-up broke, and a capability would go untested unseen.
    """
    import os

    if os.environ.get("CI") != "true" and os.environ.get("AGENTRT_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if reporter is not None and skipped and exitstatus == 0:
        reporter.write_line(
            f"ERROR: {len(skipped)} test(s) skipped in CI; every skip is a missing dependency "
            f"or a broken set-up here",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
