"""The adapter store on a real PostgreSQL: numbers never reused, one serving version, and
promotion a compare-and-set that exactly one of several racing processes wins.

Each test gets an empty database (`postgres_url`, tests/conftest.py); separate
processes stand in for separate replicas, each with its own connection pool.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest

from runtime.deploy.registry import (
    ADAPTER_MIGRATIONS,
    RegistryError,
    ServingChanged,
    SQLAdapterRegistry,
    VersionStatus,
    open_registry,
)
from runtime.storage import SchemaTooNew
from runtime.storage.sql import open_database

SPAWN = multiprocessing.get_context("spawn")


def _reserve(registry: SQLAdapterRegistry, name: str = "tools", above: int = 0) -> int:
    return registry.reserve(
        name, path="/a", server_path="/a", base_url="http://x/v1", base_model="smol",
        digest="d", files={"adapter_config.json": "c"}, above=above,
    ).version  # fmt: skip


# ---------------------------------------------------------------- worker processes


def _promote_worker(url: str, version: int, expected: int | None, barrier: Any, out: Any) -> None:
    registry = open_registry(url)
    try:
        barrier.wait()
        try:
            registry.promote("tools", version, expected=expected)
        except ServingChanged as exc:
            out.put(("lost", version, exc.actual))
            return
        except Exception as exc:  # reported, so the test fails at once and says why
            out.put(("error", version, repr(exc)))
            return
        out.put(("won", version, None))
    finally:
        registry.close()


def _reserve_worker(url: str, count: int, barrier: Any, out: Any) -> None:
    registry = open_registry(url)
    try:
        barrier.wait()
        try:
            out.put([_reserve(registry) for _ in range(count)])
        except Exception as exc:  # reported, so the test fails at once and says why
            out.put([repr(exc)])
    finally:
        registry.close()


def _race(target: Any, jobs: list[tuple[Any, ...]]) -> list[Any]:
    barrier = SPAWN.Barrier(len(jobs))
    out = SPAWN.Queue()
    processes = [SPAWN.Process(target=target, args=(*job, barrier, out)) for job in jobs]
    for process in processes:
        process.start()
    results = [out.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    return results


# ---------------------------------------------------------------- tests


def test_the_life_cycle_on_postgres(postgres_url: str) -> None:
    moments = iter(1_700_000_000.0 + i + 0.123456 for i in range(100))
    registry = SQLAdapterRegistry(
        open_database(postgres_url), clock=lambda: next(moments), owns_database=True
    )
    with registry:
        assert registry.url.kind == "postgresql"
        one = _reserve(registry)
        registry.update("tools", one, status=VersionStatus.FAILED, reason="server said no")
        assert _reserve(registry) == 2  # a failed number stays taken
        assert _reserve(registry, above=7) == 8
        assert _reserve(registry, "other") == 1
        registry.update("tools", 2, status=VersionStatus.EVALUATING, loaded=True,
                        evaluation={"full_call": 0.875})  # fmt: skip
        registry.promote("tools", 2, expected=None)
        with pytest.raises(ServingChanged) as raised:
            registry.promote("tools", 8, expected=None)
        assert (raised.value.expected, raised.value.actual) == (None, 2)
        registry.promote("tools", 8, expected=2)
        registry.promote("tools", 2, expected=8, demote_to=VersionStatus.ROLLED_BACK,
                         reason="rolled back")  # fmt: skip
        serving = registry.serving("tools")
        assert serving is not None and serving.served_name == "tools@v2" and serving.loaded
        assert serving.evaluation == {"full_call": 0.875}
        rolled = registry.get("tools", 8)
        assert rolled is not None and rolled.status is VersionStatus.ROLLED_BACK
        assert rolled.reason == "rolled back"
        # Timestamps keep their microseconds (PostgreSQL's REAL would not).
        assert all(v.created_at % 1 == pytest.approx(0.123456) for v in registry.versions())
        with pytest.raises(RegistryError, match="is serving"):
            registry.update("tools", 2, status=VersionStatus.REJECTED)
        with pytest.raises(RegistryError, match="no version tools@v9"):
            registry.promote("tools", 9, expected=2)
        events = [(e["version"], e["event"]) for e in registry.history("tools")]
        assert events[-2:] == [(8, "rolled_back"), (2, "serving")]
        assert [v.served_name for v in registry.versions()] == [
            "other@v1", "tools@v1", "tools@v2", "tools@v8"
        ]  # fmt: skip


def test_two_processes_promoting_at_once_one_wins(postgres_url: str) -> None:
    with open_registry(postgres_url) as registry:
        first, second = _reserve(registry), _reserve(registry)
    results = _race(_promote_worker, [(postgres_url, first, None), (postgres_url, second, None)])
    assert [r for r in results if r[0] == "error"] == []
    won = [version for outcome, version, _ in results if outcome == "won"]
    assert len(won) == 1
    loser = ({first, second} - set(won)).pop()
    lost = [(version, actual) for outcome, version, actual in results if outcome == "lost"]
    assert lost == [(loser, won[0])]  # told who won, not an integrity error
    with open_registry(postgres_url) as registry:
        serving = registry.serving("tools")
        assert serving is not None and serving.version == won[0]
        statuses = [v.status for v in registry.versions("tools")]
        assert statuses.count(VersionStatus.SERVING) == 1


def test_many_processes_replacing_the_serving_version_one_wins(postgres_url: str) -> None:
    with open_registry(postgres_url) as registry:
        incumbent = _reserve(registry)
        registry.promote("tools", incumbent, expected=None)
        rivals = [_reserve(registry) for _ in range(6)]
    results = _race(_promote_worker, [(postgres_url, v, incumbent) for v in rivals])
    assert [r for r in results if r[0] == "error"] == []
    won = [version for outcome, version, _ in results if outcome == "won"]
    assert len(won) == 1
    assert sorted(actual for outcome, _, actual in results if outcome == "lost") == [won[0]] * 5
    with open_registry(postgres_url) as registry:
        serving = registry.serving("tools")
        assert serving is not None and serving.version == won[0]
        retired = registry.get("tools", incumbent)
        assert retired is not None and retired.status is VersionStatus.RETIRED
        served = [e for e in registry.history("tools") if e["event"] == "serving"]
        assert [e["version"] for e in served] == [incumbent, won[0]]


def test_processes_reserving_at_once_get_distinct_numbers(postgres_url: str) -> None:
    open_registry(postgres_url).close()  # migrated once, before the race
    results = _race(_reserve_worker, [(postgres_url, 5) for _ in range(4)])
    assert sorted(number for numbers in results for number in numbers) == list(range(1, 21))


def test_the_schema_is_versioned_and_a_newer_one_refused(postgres_url: str) -> None:
    with open_registry(postgres_url) as registry, registry.database.transaction() as session:
        row = session.one("SELECT version FROM agentrt_schema WHERE component = 'adapters'")
        assert row == {"version": len(ADAPTER_MIGRATIONS)}
        session.run("UPDATE agentrt_schema SET version = 99 WHERE component = 'adapters'")
    with pytest.raises(SchemaTooNew, match="adapters tables"):
        open_registry(postgres_url)
