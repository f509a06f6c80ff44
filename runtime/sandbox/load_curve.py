"""The sandbox under steady load: offered rate in, achieved rate and latency out.

Calls arrive open-loop (on a fixed schedule, whether or not earlier calls are
done), as from many independent agents, each to a use-once container. For
each offered rate the step reports the achieved rate, latency percentiles
from the scheduled arrival (so queueing counts), the fraction of calls that
found a warm container, and the CPU the whole machine used.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runtime.calls import CallContext, CallStatus
from runtime.sandbox.bench_tool import bench_echo
from runtime.stats import percentile

P95_TARGET_MS = 50.0


def _busy_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


async def run_step(executor: Any, rate: float, duration_s: float) -> dict[str, Any]:
    """Offer `rate` calls/s for `duration_s` seconds; return the step's figures.

    Calls the sandbox could not serve in time (`sandbox_error`, e.g. no
    container within `sandbox_wait_s`) count as failed, with their wait in
    the latencies; an overloaded step reports them rather than stopping.

    Raises:
        RuntimeError: A call ran and returned something other than its value.
    """
    context = CallContext(tenant="bench-load")
    count = max(int(rate * duration_s), 1)
    latencies: list[float] = []
    warm = 0
    failures: dict[str, int] = {}
    container_ids: list[str] = []
    loop = asyncio.get_running_loop()

    async def one(index: int, due: float) -> None:
        nonlocal warm
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # the arrival schedule itself, not a wait for an event
        result = await executor.execute(bench_echo, {"value": index}, context)
        latencies.append((loop.time() - due) * 1000)
        if result.status is CallStatus.SANDBOX_ERROR and result.error is not None:
            failures[result.error.type] = failures.get(result.error.type, 0) + 1
            return
        if result.status is not CallStatus.OK or result.result != index:
            detail = result.error.message if result.error else repr(result.result)
            raise RuntimeError(f"a call under load ended {result.status.value}: {detail}")
        warm += bool(result.sandbox.get("warm"))
        container_ids.append(str(result.sandbox.get("container_id")))

    busy0, total0 = _busy_ticks()
    started = loop.time() + 0.05
    await asyncio.gather(*(one(i, started + i / rate) for i in range(count)))
    elapsed = loop.time() - started
    busy1, total1 = _busy_ticks()
    failed = sum(failures.values())
    cores = os.cpu_count() or 1
    return {
        "offered_per_s": rate,
        "calls": count,
        "achieved_per_s": round((count - failed) / elapsed, 2),
        "failed_calls": failed,
        "failures": failures,
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "max_ms": round(max(latencies), 1),
        "warm_fraction": round(warm / count, 3),
        "cpu_busy_fraction": round((busy1 - busy0) / max(total1 - total0, 1), 3),
        "cpu_cores": cores,
        "reused_containers": len(container_ids) - len(set(container_ids)),
    }


async def load_curve(
    rates: Sequence[float] = (1, 2, 5, 10, 20),
    *,
    duration_s: float = 30.0,
    engine: str | None = None,
    pool_size: int = 4,
    start_concurrency: int = 2,
    image: str | None = None,
) -> dict[str, Any]:
    """One executor, one step per offered rate (low to high); the highest sustained rate.

    `sustained_calls_per_s` is the highest achieved rate of a step that kept
    up (achieved >= 95 % of offered) with p95 <= 50 ms; 0 when none did.
    """
    from runtime.sandbox.docker_executor import DockerExecutor

    steps: list[dict[str, Any]] = []
    async with DockerExecutor(
        image=image,
        pool_size=pool_size,
        start_concurrency=start_concurrency,
        engine=engine,  # type: ignore[arg-type]
    ) as executor:
        for rate in rates:
            await executor.wait_ready(bench_echo)
            await executor.settle()
            steps.append(await run_step(executor, float(rate), duration_s))
        used_engine = executor.engine
        pools = executor.stats()["pools"]
    kept_up = [
        step
        for step in steps
        if step["achieved_per_s"] >= 0.95 * step["offered_per_s"]
        and step["p95_ms"] <= P95_TARGET_MS
        and step["failed_calls"] == 0
    ]
    return {
        "engine": used_engine,
        "pool_size": pool_size,
        "start_concurrency": start_concurrency,
        "duration_s": duration_s,
        "steps": steps,
        "containers_started": sum(pool["started"] for pool in pools),
        "sustained_calls_per_s": max((s["achieved_per_s"] for s in kept_up), default=0.0),
        "p95_target_ms": P95_TARGET_MS,
    }


def plot(curves: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Achieved rate and p95 latency against offered rate, one line per engine (PNG)."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (rate_axis, latency_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for curve in curves:
        offered = [s["offered_per_s"] for s in curve["steps"]]
        label = f"{curve['engine']} (pool {curve['pool_size']})"
        rate_axis.plot(offered, [s["achieved_per_s"] for s in curve["steps"]], "o-", label=label)
        latency_axis.plot(offered, [s["p95_ms"] for s in curve["steps"]], "o-", label=label)
    top = max((s["offered_per_s"] for c in curves for s in c["steps"]), default=1)
    rate_axis.plot([0, top], [0, top], ":", color="grey", label="offered")
    rate_axis.set(xlabel="offered calls/s", ylabel="achieved calls/s", title="throughput")
    latency_axis.axhline(P95_TARGET_MS, color="grey", linestyle=":", label="50 ms")
    latency_axis.set(xlabel="offered calls/s", ylabel="p95 latency (ms)", title="latency")
    latency_axis.set_yscale("log")
    for axis in (rate_axis, latency_axis):
        axis.legend()
        axis.grid(alpha=0.3)
    figure.suptitle(f"use-once sandbox containers under load ({os.cpu_count()} cores)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
