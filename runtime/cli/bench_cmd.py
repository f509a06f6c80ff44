"""`agentrt bench gate|sandbox|audit`: the project's performance figures, with floors."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from typing import Any

from runtime.cli.gate_options import (
    UsageError,
    build_audit,
    build_policy,
    fail_usage,
    load_registry,
    print_json,
)

# The ratio holds across machines better than microseconds do: the gate's four
# stages at most 20 times one json.loads of the same arguments.
GATE_FLOORS = {"gate_p50_us": 100.0, "gate_vs_json_loads": 20.0, "loop_lag_p99_ms": 20.0}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("bench", help="measure gate, sandbox and audit performance")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)

    gate = kinds.add_parser(
        "gate", help="gate cost per call and event-loop lag under 100 and 1,000 concurrent runs"
    )
    gate.add_argument("--module", "-m", default="tools", help="tool module (default: tools)")
    gate.add_argument(
        "--policy",
        metavar="DIR",
        default=None,
        help="policy stage from DIR (default: the shipped default policy); 'none' leaves it out",
    )
    gate.add_argument(
        "--audit",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="include the audit append (batched fsync, to a temp file; default on)",
    )
    gate.add_argument(
        "--runs",
        type=int,
        nargs="+",
        default=None,
        metavar="N",
        help="concurrent runs to measure loop lag under, one measurement each "
        "(default: 100 1000); the floor applies to the first",
    )
    gate.add_argument("--iterations", type=int, default=20_000)
    gate.add_argument("--json", action="store_true")
    gate.set_defaults(handler=_gate)

    sandbox = kinds.add_parser(
        "sandbox", help="docker run baseline vs warm pool (per call, per session)"
    )
    sandbox.add_argument("-n", type=int, default=40, help="timed calls per mode")
    sandbox.add_argument("--pool-size", type=int, default=4)
    sandbox.add_argument(
        "--engine",
        choices=("docker", "crun", "auto"),
        default="auto",
        help="what starts containers (auto: crun where the host supports it, else docker)",
    )
    sandbox.add_argument(
        "--rates",
        default="1,2,5,10,20",
        help="offered calls/s of the load curve, comma-separated ('' skips the curve)",
    )
    sandbox.add_argument("--duration", type=float, default=30.0, help="seconds per load step")
    sandbox.add_argument(
        "--compare-docker",
        action="store_true",
        help="also run the load curve through dockerd (for the chart)",
    )
    sandbox.add_argument("--chart", default=None, help="write the load curve as a PNG here")
    sandbox.add_argument("--json", action="store_true")
    sandbox.set_defaults(handler=_sandbox)

    model = kinds.add_parser(
        "model", help="embedded model: turn latency, tokens/s, the runtime's share of a turn"
    )
    model.add_argument("--module", "-m", default="tools")
    model.add_argument("--rounds", type=int, default=2)
    model.add_argument("--max-tokens", type=int, default=64)
    model.add_argument("--adapter", default=None, help="GGUF LoRA adapter")
    model.add_argument("--json", action="store_true")
    model.set_defaults(handler=_model)

    service = kinds.add_parser(
        "service",
        help="agentrt serve through HTTP: runs/s and p95, 1 vs 2 replicas; approval claims/s",
    )
    service.add_argument("--runs", type=int, default=200, help="timed runs per setting")
    service.add_argument("--concurrency", type=int, default=8, help="runs in flight")
    service.add_argument(
        "--store",
        metavar="URL",
        default=None,
        help="PostgreSQL to use (its tables are written); default: a temporary server",
    )
    service.add_argument("--claims", type=int, default=400)
    service.add_argument("--json", action="store_true")
    service.set_defaults(handler=_service)

    from runtime.cli.bench_audit import register as register_audit

    register_audit(kinds)


def _gate(args: argparse.Namespace) -> int:
    from runtime.bench.gate import DEFAULT_RUNS, bench_concurrent_runs, bench_gate_stages

    try:
        registry = load_registry(args.module)
        policy = build_policy(args.policy)
    except UsageError as exc:
        return fail_usage(str(exc))
    with tempfile.TemporaryDirectory(prefix="agentrt-bench-") as workdir:
        audit = build_audit(f"{workdir}/audit.jsonl", policy) if args.audit else None
        try:
            figures = bench_gate_stages(
                registry, policy=policy, audit=audit, iterations=args.iterations
            )
        finally:
            if audit is not None:
                audit.close()
    runs = args.runs or DEFAULT_RUNS
    figures.update(asyncio.run(bench_concurrent_runs(registry, runs=runs, policy=policy)))
    figures["floors"] = GATE_FLOORS
    figures["meets_floors"] = (
        figures["gate_p50_us"] <= GATE_FLOORS["gate_p50_us"]
        and figures["gate_vs_json_loads"] <= GATE_FLOORS["gate_vs_json_loads"]
        and figures["loop_lag_p99_ms"] < GATE_FLOORS["loop_lag_p99_ms"]
        and figures["errors"] == 0
    )
    if args.json:
        print_json(figures)
    else:
        print(f"stages timed: {' + '.join(figures['stages'])} ({figures['iterations']} calls)")
        print(
            f"gate p50 {figures['gate_p50_us']} µs, p95 {figures['gate_p95_us']} µs "
            f"(json.loads alone: {figures['baseline_json_loads_p50_us']} µs, "
            f"{figures['gate_vs_json_loads']}x)  floor p50 <= 100 µs and <= 20x"
        )
        for index, lag in enumerate(figures["lag_by_runs"].values()):
            floor = "  floor p99 < 20 ms" if index == 0 else ""
            print(
                f"{lag['runs']} concurrent runs: {lag['errors']} errors, "
                f"{lag['runs_wall_s']} s, loop lag p99 {lag['loop_lag_p99_ms']} ms, max "
                f"{lag['loop_lag_max_ms']} ms (idle loop: {figures['idle_loop_lag_p99_ms']} ms)"
                f"{floor}"
            )
            print(
                f"  without gc.freeze() after start-up: loop lag p99 "
                f"{lag['loop_lag_p99_ms_without_gc_freeze']} ms "
                f"({lag['gc_collections_without_freeze']} collections during the runs)"
            )
        print("meets floors" if figures["meets_floors"] else "BELOW FLOOR")
    return 0 if figures["meets_floors"] else 1


SANDBOX_FLOORS = {
    "per_call_p50_ms": 25.0,
    "per_session_p50_ms": 5.0,
    "speedup_vs_baseline": 20.0,
    "sustained_calls_per_s": 10.0,
}


def _sandbox(args: argparse.Namespace) -> int:
    from pathlib import Path

    from runtime.sandbox.bench import bench_sandbox
    from runtime.sandbox.load_curve import load_curve, plot

    figures = asyncio.run(bench_sandbox(args.n, pool_size=args.pool_size, engine=args.engine))
    speedup = figures["baseline_p50_ms"] / max(figures["per_call_p50_ms"], 1e-6)
    rates = [float(rate) for rate in args.rates.split(",") if rate.strip()]
    curves = []
    if rates:
        for engine in [args.engine] + (["docker"] if args.compare_docker else []):
            curves.append(
                asyncio.run(
                    load_curve(
                        rates, duration_s=args.duration, engine=engine, pool_size=args.pool_size
                    )
                )
            )
        figures["load_curve"] = curves[0]
        figures["sustained_calls_per_s"] = curves[0]["sustained_calls_per_s"]
        if len(curves) > 1:
            figures["load_curve_docker"] = curves[1]
        if args.chart:
            written = plot(curves, Path(args.chart))
            figures["chart"] = str(written) if written else "matplotlib is not installed"
    figures["floors"] = SANDBOX_FLOORS
    figures["meets_floors"] = (
        figures["per_call_p50_ms"] <= SANDBOX_FLOORS["per_call_p50_ms"]
        and figures["per_session_p50_ms"] <= SANDBOX_FLOORS["per_session_p50_ms"]
        and speedup >= SANDBOX_FLOORS["speedup_vs_baseline"]
        and figures["reused_containers"] == 0
        and (
            not rates or figures["sustained_calls_per_s"] >= SANDBOX_FLOORS["sustained_calls_per_s"]
        )
    )
    if args.json:
        print_json(figures)
    else:
        for key, value in figures.items():
            if key.startswith("load_curve"):
                print(f"{key} ({value['engine']}):")
                for step in value["steps"]:
                    print(f"  {step}")
            elif key not in ("floors",):
                print(f"{key}: {value}")
    return 0 if figures["meets_floors"] else 1


MODEL_SHARE_FLOOR_PCT = 2.0


def _model(args: argparse.Namespace) -> int:
    from runtime.bench.model import bench_model
    from runtime.model.local_server import LocalServerError

    try:
        registry = load_registry(args.module)
        figures = asyncio.run(
            bench_model(
                registry, rounds=args.rounds, max_tokens=args.max_tokens, adapter=args.adapter
            )
        )
    except (UsageError, LocalServerError) as exc:
        return fail_usage(str(exc))
    figures["floor_runtime_share_pct"] = MODEL_SHARE_FLOOR_PCT
    figures["meets_floors"] = figures["runtime_share_p50_pct"] < MODEL_SHARE_FLOOR_PCT
    if args.json:
        print_json(figures)
    else:
        for key, value in figures.items():
            print(f"{key}: {value}")
    return 0 if figures["meets_floors"] else 1


def _service(args: argparse.Namespace) -> int:
    from runtime.bench.service import bench_service

    try:
        figures = bench_service(
            runs=args.runs, concurrency=args.concurrency, store=args.store, claims=args.claims
        )
    except RuntimeError as exc:  # no PostgreSQL binaries, a replica that did not start
        return fail_usage(str(exc))
    if args.json:
        print_json(figures)
        return 0
    print(f"store: {figures['store']}, {figures['cpus']} CPUs, {figures['concurrency']} in flight")
    for count in (1, 2):
        r = figures[f"replicas_{count}"]
        print(
            f"{count} replica(s): {r['runs_per_s']} runs/s, p50 {r['p50_ms']} ms, "
            f"p95 {r['p95_ms']} ms ({r['runs']} runs, {r['errors']} errors)"
        )
    c = figures["claims"]
    print(f"approval claims: {c['claims_per_s']}/s ({c['claims']} by {c['workers']} workers)")
    return 0
