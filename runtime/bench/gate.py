"""`agentrt bench gate`: the gate's cost per call and the event loop's lag under load.

Two measurements in one process:
1. The per-call cost of every stage before execution (strict parse, schema
   validation, policy decision, audit append when configured), timed call by
   call, against a baseline of a bare `json.loads` of the same arguments. The
   two are timed in alternating blocks, so load from other processes on a
   shared machine weighs on both alike and their ratio holds.
2. Event-loop lag while N agent runs go through the scripted server
   concurrently (100 and 1,000 by default), against the lag of the same idle
   loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import multiprocessing
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from runtime.arguments import ArgumentGate, ArgumentsAccepted
from runtime.audit import events
from runtime.audit.sink import AuditSink
from runtime.calls import CallContext, ToolCallRequest
from runtime.policy.decision import PolicyEngine
from runtime.stats import percentile
from runtime.tools import ToolRegistry

LAG_INTERVAL_S = 0.002
DEFAULT_RUNS = (100, 1000)
# 100 runs take ~0.3 s, ~75 lag samples: their "p99" would be their maximum.
# Rounds of N concurrent runs repeat until the samples make a p99 (or 8 rounds).
_MIN_LAG_SAMPLES = 400
_MAX_ROUNDS = 8
_BLOCK = 100  # calls timed back to back before the next function's turn
TYPICAL_CALL = ToolCallRequest(
    id="chatcmpl-tool-0123456789abcdef",
    name="convert_units",
    arguments='{"value": 12.5, "from_unit": "km", "to_unit": "mi"}',
)


def _time_interleaved(
    fns: Sequence[Callable[[], object]], iterations: int, block: int = _BLOCK
) -> list[list[float]]:
    """Time each of `fns` `iterations` times (µs per call), taking turns in blocks.

    Within a block a function runs back to back, its caches warm as when timed
    alone; taking turns exposes every function to the same drift in machine
    load, which on a shared machine moves absolute times by half or more.
    """
    timings: list[list[float]] = [[] for _ in fns]
    clock = time.perf_counter_ns
    done = 0
    while done < iterations:
        count = min(block, iterations - done)
        for fn, out in zip(fns, timings, strict=True):
            for _ in range(count):
                start = clock()
                fn()
                out.append((clock() - start) / 1000)
        done += count
    return timings


def time_each(fn: Callable[[], object], iterations: int) -> list[float]:
    """Call `fn` `iterations` times; each call's wall time in microseconds."""
    return _time_interleaved([fn], iterations)[0]


def pre_execution_call(
    gate: ArgumentGate,
    request: ToolCallRequest = TYPICAL_CALL,
    *,
    policy: PolicyEngine | None = None,
    audit: AuditSink | None = None,
    context: CallContext | None = None,
) -> Callable[[], None]:
    """One call through every stage before execution, as `bench gate` times it.

    Parse and validate (`gate`), then the policy decision and the audit append
    when they are given.

    Raises:
        ValueError: `request` does not pass the gate, so there is nothing to time.
    """
    context = context or CallContext(tenant="bench", agent="bench", run_id="bench")
    first = gate.check(request)
    if not isinstance(first, ArgumentsAccepted):
        raise ValueError(f"the benchmark call is not valid: {first.error.message}")

    def full() -> None:
        accepted = gate.check(request)
        assert isinstance(accepted, ArgumentsAccepted)
        if policy is not None:
            policy.decide(accepted.tool.name, accepted.arguments, context)
        if audit is not None:
            call = events.call_fields(accepted.tool.name, request.id, context)
            events.write(audit, events.tool_validated(call, accepted.arguments))

    return full


def bench_gate_stages(
    registry: ToolRegistry,
    *,
    request: ToolCallRequest = TYPICAL_CALL,
    policy: PolicyEngine | None = None,
    audit: AuditSink | None = None,
    context: CallContext | None = None,
    iterations: int = 20_000,
) -> dict[str, Any]:
    """Time the pre-execution stages for one typical call, in microseconds."""
    gate = ArgumentGate(registry)
    full = pre_execution_call(gate, request, policy=policy, audit=audit, context=context)
    # Warm caches (validator compilation, policy regexes) before timing.
    for _ in range(200):
        full()
    baseline, parse_validate, gate_times = _time_interleaved(
        [lambda: json.loads(request.arguments), lambda: gate.check(request), full], iterations
    )
    out: dict[str, Any] = {
        "gate_p50_us": round(percentile(gate_times, 0.5), 2),
        "gate_p95_us": round(percentile(gate_times, 0.95), 2),
        "gate_p99_us": round(percentile(gate_times, 0.99), 2),
        "parse_validate_p50_us": round(percentile(parse_validate, 0.5), 2),
        "baseline_json_loads_p50_us": round(percentile(baseline, 0.5), 2),
        "stages": ["parse", "validate"]
        + (["policy"] if policy is not None else [])
        + (["audit"] if audit is not None else []),
        "iterations": iterations,
    }
    out["gate_vs_json_loads"] = round(
        out["gate_p50_us"] / max(out["baseline_json_loads_p50_us"], 0.01), 1
    )
    return out


async def _measure_lag(
    stop: asyncio.Event, interval_s: float, samples: list[float], limit: int | None = None
) -> None:
    """Sample how late a timer fires: the time the loop was busy with other work."""
    while not stop.is_set() and (limit is None or len(samples) < limit):
        start = time.perf_counter()
        await asyncio.sleep(interval_s)
        samples.append(max(0.0, (time.perf_counter() - start - interval_s) * 1000))


def _two_turn_handler(body: dict[str, Any]) -> Any:
    from runtime.testing import ScriptedReply

    last = body["messages"][-1]
    if last["role"] == "tool":
        return ScriptedReply.message(f"The result is {last['content']}.")
    return ScriptedReply.call("convert_units", {"value": 12.5, "from_unit": "km", "to_unit": "mi"})


def _serve_in_child(conn: Any) -> None:
    from runtime.testing import ScriptedServer

    with ScriptedServer(handler=_two_turn_handler) as server:
        conn.send(server.base_url)
        conn.recv()  # block until the parent says stop


@contextlib.contextmanager
def _server_process() -> Iterator[str]:
    """The scripted server in its own process, like a real model server.

    In a thread it would compete with the measured loop for the GIL and
    inflate the lag figure with its own work.
    """
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_serve_in_child, args=(child,), daemon=True)
    process.start()
    try:
        if not parent.poll(30):
            raise RuntimeError("the scripted server process did not start")
        yield parent.recv()
    finally:
        parent.send("stop")
        process.join(10)
        if process.is_alive():
            process.kill()


async def _lag_during_runs(agent: Any, runs: int) -> tuple[list[Any], list[float], float, int]:
    busy: list[float] = []
    stop = asyncio.Event()
    collections_before = sum(stat["collections"] for stat in gc.get_stats())
    monitor = asyncio.create_task(_measure_lag(stop, LAG_INTERVAL_S, busy))
    started = time.perf_counter()
    results = await asyncio.gather(
        *(agent.run(f"convert 12.5 km to miles ({i})", tenant="bench") for i in range(runs)),
        return_exceptions=True,
    )
    elapsed = time.perf_counter() - started
    stop.set()
    await monitor
    collections = sum(stat["collections"] for stat in gc.get_stats()) - collections_before
    return results, busy, elapsed, collections


async def bench_concurrent_runs(
    registry: ToolRegistry,
    *,
    runs: int | Sequence[int] = DEFAULT_RUNS,
    policy: PolicyEngine | None = None,
) -> dict[str, Any]:
    """Run N agent runs at once through the scripted server, for each N; report loop lag.

    Each N goes twice: as the process stands, and after `gc.freeze()` has
    moved the start-up objects (pydantic, jsonschema, the tools) out of the
    collector's reach, as a long-running service should do after start-up.
    Each goes in rounds of N concurrent runs until at least 400 lag samples
    are in (at most 8 rounds), so the p99 is not just the worst sample;
    `runs_wall_s` is a round's median, the GC counts are of all rounds.
    The top-level figures are the first N's (the floor applies to them);
    `lag_by_runs` holds every N's, and `loop_lag_p99_ms_<N>_runs` (with
    `_without_gc_freeze`) each N's p99.
    """
    from runtime.agent import Agent
    from runtime.model.client import OpenAICompatibleClient

    counts = [runs] if isinstance(runs, int) else list(runs)
    idle: list[float] = []
    await _measure_lag(asyncio.Event(), LAG_INTERVAL_S, idle, limit=200)
    idle_p99 = percentile(idle, 0.99)

    by_runs: dict[str, dict[str, Any]] = {}
    with _server_process() as base_url:
        client = OpenAICompatibleClient(base_url, "scripted")
        agent = Agent(client, registry, policy=policy, name="bench")
        # Warm up (first requests import response types and open connections):
        # the figure is the steady-state lag, not the cost of the first import.
        await asyncio.gather(*(agent.run("warm-up", tenant="bench") for _ in range(4)))
        for count in counts:
            by_runs[str(count)] = await _lag_figures(agent, count, idle_p99)
        await client.aclose()
    first = by_runs[str(counts[0])]
    out: dict[str, Any] = {
        **first,
        "errors": sum(figures["errors"] for figures in by_runs.values()),
        "idle_loop_lag_p99_ms": round(idle_p99, 3),
        "max_concurrent_model_requests": client.max_concurrent_requests,
        "lag_by_runs": by_runs,
    }
    for name, figures in by_runs.items():
        out[f"loop_lag_p99_ms_{name}_runs"] = figures["loop_lag_p99_ms"]
        out[f"loop_lag_p99_ms_{name}_runs_without_gc_freeze"] = figures[
            "loop_lag_p99_ms_without_gc_freeze"
        ]
    return out


async def _rounds(agent: Any, runs: int) -> tuple[list[Any], list[float], list[float], int]:
    """Rounds of `runs` concurrent runs until the lag samples make a p99."""
    results: list[Any] = []
    samples: list[float] = []
    elapsed: list[float] = []
    collections = 0
    while len(samples) < _MIN_LAG_SAMPLES and len(elapsed) < _MAX_ROUNDS:
        done, lag, seconds, count = await _lag_during_runs(agent, runs)
        results += done
        samples += lag
        elapsed.append(seconds)
        collections += count
    return results, samples, elapsed, collections


async def _lag_figures(agent: Any, runs: int, idle_p99: float) -> dict[str, Any]:
    from runtime.agent import RunStatus

    unfrozen_results, unfrozen, _, unfrozen_gcs = await _rounds(agent, runs)
    gc.collect()
    gc.freeze()
    try:
        results, busy, elapsed, collections = await _rounds(agent, runs)
    finally:
        gc.unfreeze()
    errors = [
        r
        for r in results + unfrozen_results
        if isinstance(r, BaseException) or r.status is not RunStatus.COMPLETED
    ]
    wall = percentile(elapsed, 0.5)
    return {
        "runs": runs,
        "rounds": len(elapsed),
        "errors": len(errors),
        "error_samples": [str(e if isinstance(e, BaseException) else e.error) for e in errors[:3]],
        "runs_wall_s": round(wall, 3),
        "runs_per_s": round(runs / wall, 1),
        "loop_lag_p50_ms": round(percentile(busy, 0.5), 3),
        "loop_lag_p99_ms": round(percentile(busy, 0.99), 3),
        "loop_lag_max_ms": round(max(busy, default=0.0), 3),
        "loop_lag_p99_ms_without_gc_freeze": round(percentile(unfrozen, 0.99), 3),
        "loop_lag_max_ms_without_gc_freeze": round(max(unfrozen, default=0.0), 3),
        "gc_collections_during_runs": collections,
        "gc_collections_without_freeze": unfrozen_gcs,
        "lag_vs_idle": round(percentile(busy, 0.99) / max(idle_p99, 0.001), 1),
        "lag_samples": len(busy),
    }
