"""Sliding-window rate limits: exact counts under bursts, persistence, atomicity."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runtime.calls import CallContext
from runtime.policy.engine import PolicySet
from runtime.policy.model import PolicyFile
from runtime.policy.ratelimit import (
    InMemoryRateLimitStore,
    LimitCheck,
    RateLimitStore,
    SQLiteRateLimitStore,
)

NOW = 1_700_000_000.0


def check(
    limit_id: str = "l", key: str = "k", capacity: int = 3, window_s: float = 60.0
) -> LimitCheck:
    return LimitCheck(limit_id, key, capacity, window_s)


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], RateLimitStore]:
    stores: list[RateLimitStore] = []

    def make() -> RateLimitStore:
        store: RateLimitStore = (
            InMemoryRateLimitStore()
            if request.param == "memory"
            else SQLiteRateLimitStore(tmp_path / "rl.db")
        )
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def test_window_slides(make_store: Callable[[], RateLimitStore]) -> None:
    store = make_store()
    c = check(capacity=2, window_s=10.0)
    assert store.try_acquire([c], NOW) is None
    assert store.try_acquire([c], NOW + 5) is None
    assert store.try_acquire([c], NOW + 9.9) == "l"
    assert store.try_acquire([c], NOW + 10.0) is None  # the first call left the window
    assert store.try_acquire([c], NOW + 10.1) == "l"
    assert store.peek([c], NOW + 14.9) == "l"
    assert store.peek([c], NOW + 15.0) is None  # the second left too


def test_all_or_nothing_across_limits(make_store: Callable[[], RateLimitStore]) -> None:
    store = make_store()
    wide, narrow = check("wide", "w", capacity=5), check("narrow", "n", capacity=1)
    assert store.try_acquire([wide, narrow], NOW) is None
    assert store.try_acquire([wide, narrow], NOW) == "narrow"
    # The refused call was not recorded in the wide window: four slots remain.
    assert [store.try_acquire([wide], NOW) for _ in range(5)] == [None] * 4 + ["wide"]


async def test_burst_from_concurrent_tasks_admits_exactly_capacity(
    make_store: Callable[[], RateLimitStore],
) -> None:
    store = make_store()
    c = check(capacity=10)
    start = asyncio.Event()

    async def one() -> str | None:
        await start.wait()
        return await asyncio.to_thread(store.try_acquire, [c], NOW)

    tasks = [asyncio.create_task(one()) for _ in range(60)]
    await asyncio.sleep(0)  # let every task reach the barrier
    start.set()
    results = await asyncio.gather(*tasks)
    assert results.count(None) == 10
    assert results.count("l") == 50


def test_burst_from_threads_through_the_engine(tmp_path: Path) -> None:
    policy = PolicyFile.model_validate(
        {
            "apiVersion": "agentrt/v1",
            "kind": "ToolPolicy",
            "metadata": {"id": "p"},
            "rules": [{"id": "a", "effect": "allow", "tools": ["t"]}],
            "limits": [{"id": "lim", "tools": ["t"], "per": ["tenant"], "rate": "7/minute"}],
        }
    )
    store = SQLiteRateLimitStore(tmp_path / "rl.db")
    engine = PolicySet([policy], rate_limits=store, clock=lambda: NOW)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        for _ in range(5):
            decision = engine.decide("t", {}, CallContext(tenant="acme"))
            with lock:
                outcomes.append(decision.decision)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    assert outcomes.count("allow") == 7
    assert outcomes.count("deny") == 33


def test_sqlite_windows_survive_a_restart(tmp_path: Path) -> None:
    c = check(capacity=2)
    first = SQLiteRateLimitStore(tmp_path / "rl.db")
    assert first.try_acquire([c], NOW) is None
    first.close()
    second = SQLiteRateLimitStore(tmp_path / "rl.db")
    assert second.try_acquire([c], NOW + 1) is None
    assert second.try_acquire([c], NOW + 2) == "l"
    second.close()


def _spend(path: str, attempts: int, queue: Any) -> None:
    store = SQLiteRateLimitStore(path)
    admitted = sum(store.try_acquire([check(capacity=15)], NOW) is None for _ in range(attempts))
    store.close()
    queue.put(admitted)


def test_sqlite_windows_are_shared_by_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    path = str(tmp_path / "rl.db")
    SQLiteRateLimitStore(path).close()  # create the schema once
    procs = [ctx.Process(target=_spend, args=(path, 20, queue)) for _ in range(2)]
    for proc in procs:
        proc.start()
    admitted = [queue.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert sum(admitted) == 15


def test_memory_store_forgets_idle_windows() -> None:
    store = InMemoryRateLimitStore()
    for index in range(InMemoryRateLimitStore._SWEEP_EVERY):
        store.try_acquire([check(key=f"k{index}", window_s=1.0)], NOW)
    fresh = check(key="fresh", capacity=10**6, window_s=1.0)
    for _ in range(InMemoryRateLimitStore._SWEEP_EVERY):
        store.try_acquire([fresh], NOW + 5)
    assert list(store._events) == ["fresh"]
