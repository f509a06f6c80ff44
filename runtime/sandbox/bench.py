"""`bench_sandbox`: latency and throughput of the Docker sandbox, mode by mode.

All modes run the same trivial tool (`bench_echo`, defined here so containers
import it from the mounted runtime package) in one process:

- baseline: a hardened one-shot container per call (create, start, wait,
  logs, remove), the way most agent sandboxes run code;
- cold: the executor without a pool (each call starts its own container);
- per_call: the executor's warm pool, one container per call, measured with
  the pool full before each call (steady state at moderate load);
- per_session: one container reused for the calls of one run;
- saturation: calls back to back from several callers while the pool refills
  (closed loop: the most calls per second the machine gives);
- load curve (`runtime.sandbox.load_curve`): calls arriving on a schedule at
  1, 2, 5, 10 and 20 calls/s, the highest rate kept at p95 <= 50 ms reported
  as `sustained_calls_per_s`.

This module imports nothing heavy at import time: it is imported inside every
benchmark container.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import tempfile
import time
from typing import Any

from runtime.calls import CallContext, CallStatus, ExecutionResult
from runtime.sandbox.bench_tool import bench_echo
from runtime.stats import percentile

_ONE_SHOT = (
    "import sys, json; sys.path[:0] = ['/opt/agentrt/lib', '/opt/agentrt/site'];"
    "from runtime.sandbox.bench_tool import bench_echo;"
    "print(json.dumps(bench_echo.invoke_sync({'value': 7})))"
)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _check(result: ExecutionResult, expected: int) -> None:
    if result.status is not CallStatus.OK or result.result != expected:
        detail = result.error.message if result.error else result.result
        raise RuntimeError(f"benchmark call failed: {result.status.value}: {detail}")


async def _baseline(n: int, image: str | None, docker_host: str | None) -> list[float]:
    """Hardened one-shot containers: create, start, wait, read logs, remove."""
    from runtime.sandbox.containers import DockerAPI
    from runtime.sandbox.hardening import (
        SandboxLimits,
        container_labels,
        container_spec,
        default_image,
        resolve_config,
    )
    from runtime.sandbox.reaper import owner_id

    api = DockerAPI(docker_host)
    client = await api.connect()
    config = resolve_config(
        bench_echo, defaults=SandboxLimits(), image=image or default_image(), network=False
    )
    labels = container_labels(config, owner=owner_id(), executor_id="bench-baseline")
    timings: list[float] = []
    with tempfile.TemporaryDirectory(prefix="agentrt-bench-") as empty:
        spec = container_spec(config, channel_dir=empty, labels=labels)
        spec["command"] = ["python3", "-I", "-c", _ONE_SHOT]

        def one_shot() -> bytes:
            container = client.create_container(**spec)
            try:
                client.start(container)
                status = client.wait(container, timeout=60)
                output: bytes = client.logs(container, stdout=True, stderr=False)
                if status.get("StatusCode") != 0:
                    raise RuntimeError(f"baseline container failed: {status}")
                return output
            finally:
                client.remove_container(container, force=True)

        try:
            for _ in range(n):
                started = time.perf_counter()
                output = await api.call(one_shot)
                timings.append(_ms(started))
                if output.strip() != b"7":
                    raise RuntimeError(f"baseline returned {output!r}")
        finally:
            api.close()
    return timings


async def bench_sandbox(
    n: int = 30,
    *,
    image: str | None = None,
    pool_size: int = 4,
    baseline_n: int | None = None,
    cold_n: int | None = None,
    sustained_n: int | None = None,
    concurrency: int = 4,
    docker_host: str | None = None,
    engine: str | None = None,
) -> dict[str, Any]:
    """Measure the sandbox in every mode; return one JSON-ready dict.

    Args:
        n: Calls measured in per-call and per-session mode.
        image: Sandbox image (default: the executor's).
        pool_size: Warm containers kept ready in per-call mode.
        baseline_n: One-shot baseline calls (default: min(n, 20); each takes ~0.5 s).
        cold_n: Pool-less calls (default: min(n, 10)).
        sustained_n: Calls in the throughput run (default: 2 * n).
        concurrency: Concurrent callers in the throughput run.
        docker_host: Daemon address; None reads DOCKER_HOST.
        engine: `docker`, `crun` or `auto` (see `DockerExecutor`); the
            baseline is always a hardened `docker run`.

    Returns:
        At least `baseline_p50_ms`, `per_call_p50_ms`, `per_call_p95_ms`,
        `per_session_p50_ms`, `saturation_calls_per_s`, `reused_containers`
        (containers that served more than one call in per-call mode; must be
        0) and the ratios to the baseline.

    Raises:
        SandboxUnavailable: The daemon or the image is missing.
        RuntimeError: A benchmark call did not return its value.
    """
    from runtime.sandbox.docker_executor import DockerExecutor

    baseline_n = min(n, 20) if baseline_n is None else baseline_n
    cold_n = min(n, 10) if cold_n is None else cold_n
    sustained_n = 2 * n if sustained_n is None else sustained_n
    context = CallContext(tenant="bench")
    report: dict[str, Any] = {"n": n, "pool_size": pool_size}

    baseline = await _baseline(baseline_n, image, docker_host)

    cold: list[float] = []
    async with DockerExecutor(
        image=image,
        pool_size=0,
        docker_host=docker_host,
        engine=engine,  # type: ignore[arg-type]
    ) as executor:
        for i in range(cold_n):
            started = time.perf_counter()
            result = await executor.execute(bench_echo, {"value": i}, context)
            cold.append(_ms(started))
            _check(result, i)

    per_call: list[float] = []
    container_ids: list[str] = []
    warm_calls = 0
    async with DockerExecutor(
        image=image,
        pool_size=pool_size,
        docker_host=docker_host,
        engine=engine,  # type: ignore[arg-type]
    ) as ex:
        report["image"] = ex.image
        report["engine"] = ex.engine
        for i in range(n):
            await ex.wait_ready(bench_echo)  # not timed: steady state with a full pool
            started = time.perf_counter()
            result = await ex.execute(bench_echo, {"value": i}, context)
            per_call.append(_ms(started))
            _check(result, i)
            container_ids.append(result.sandbox["container_id"])

        await ex.wait_ready(bench_echo)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(sustained_n):
            queue.put_nowait(i)

        async def caller() -> None:
            nonlocal warm_calls
            while not queue.empty():
                value = queue.get_nowait()
                result = await ex.execute(bench_echo, {"value": value}, context)
                _check(result, value)
                container_ids.append(result.sandbox["container_id"])
                warm_calls += bool(result.sandbox.get("warm"))

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(max(concurrency, 1))))
        sustained_s = time.perf_counter() - started

    per_session: list[float] = []
    session_ids: set[str] = set()
    async with DockerExecutor(
        image=image,
        mode="per_session",
        pool_size=1,
        docker_host=docker_host,
        engine=engine,  # type: ignore[arg-type]
    ) as ex:
        run = CallContext(tenant="bench", run_id="bench-run")
        await ex.wait_ready(bench_echo, run)
        first = await ex.execute(bench_echo, {"value": -1}, run)  # takes the session container
        _check(first, -1)
        for i in range(n):
            started = time.perf_counter()
            result = await ex.execute(bench_echo, {"value": i}, run)
            per_session.append(_ms(started))
            _check(result, i)
            session_ids.add(result.sandbox["container_id"])
        await ex.end_run("bench-run")

    baseline_p50 = round(percentile(baseline, 0.5), 2)
    per_call_p50 = round(percentile(per_call, 0.5), 2)
    per_session_p50 = round(percentile(per_session, 0.5), 2)
    cold_p50 = round(percentile(cold, 0.5), 2)
    report.update(
        baseline_n=baseline_n,
        baseline_p50_ms=baseline_p50,
        baseline_p95_ms=round(percentile(baseline, 0.95), 2),
        cold_n=cold_n,
        cold_p50_ms=cold_p50,
        cold_p95_ms=round(percentile(cold, 0.95), 2),
        per_call_p50_ms=per_call_p50,
        per_call_p95_ms=round(percentile(per_call, 0.95), 2),
        per_call_mean_ms=round(statistics.fmean(per_call), 2) if per_call else math.nan,
        per_session_p50_ms=per_session_p50,
        per_session_p95_ms=round(percentile(per_session, 0.95), 2),
        per_session_containers=len(session_ids),
        saturation_n=sustained_n,
        saturation_concurrency=concurrency,
        saturation_calls_per_s=round(sustained_n / sustained_s, 2),
        saturation_warm_fraction=round(warm_calls / sustained_n, 3) if sustained_n else math.nan,
        reused_containers=len(container_ids) - len(set(container_ids)),
        per_call_speedup=round(baseline_p50 / per_call_p50, 1),
        per_session_speedup=round(baseline_p50 / per_session_p50, 1),
        cold_speedup=round(baseline_p50 / cold_p50, 2) if cold else math.nan,
    )
    report["floors_met"] = {
        "per_call_p50_ms<=25": per_call_p50 <= 25,
        "per_call_speedup>=20": report["per_call_speedup"] >= 20,
        "per_session_p50_ms<=5": per_session_p50 <= 5,
        "reused_containers==0": report["reused_containers"] == 0,
    }
    return report
