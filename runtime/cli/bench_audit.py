"""`agentrt bench audit`: audit write latency, verify throughput and query time.

`bench_audit()` writes an N-record log through `HashChainSink` (batched
fsync, the default), timing every `write()`; then verifies the whole log and
runs a selective query and the statistics over it. The `bench` command module
wires it in with `register(bench_subparsers)`.
"""

from __future__ import annotations

import argparse
import array
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from runtime.audit import events
from runtime.audit.events import Event
from runtime.stats import percentile

__all__ = ["bench_audit", "register"]

_TOOLS = ("search_web", "read_file", "send_email", "run_sql", "get_weather")
_STATUSES = ("ok",) * 16 + ("denied", "invalid_arguments", "tool_error", "timeout")


def _fields(index: int) -> dict[str, Any]:
    """A realistic `execution.finished`-sized record (with its decision), varied by `index`."""
    from runtime.calls import CallContext, CallStatus, ExecutionResult
    from runtime.policy.decision import PolicyDecision

    status = CallStatus(_STATUSES[index % len(_STATUSES)])
    context = CallContext(
        tenant=f"tenant-{index % 7}",
        agent="support-bot",
        conversation_id=f"conv-{index // 20:08x}",
        run_id=f"run-{index // 100:08x}",
        principal="user-42",
    )
    call = events.call_fields(
        _TOOLS[index % len(_TOOLS)],
        f"call_{index:012x}",
        context,
        model_name="smollm2-135m-instruct",
    )
    denied = status is CallStatus.DENIED
    decision = PolicyDecision(
        decision="deny" if denied else "allow",
        rule_ids=("deny-external-email",) if denied else ("allow-default",),
        policy_sha256="3f" * 32,
    )
    result = ExecutionResult(
        status=status,
        duration_ms=float(index % 250) + 0.25,
        sandbox={"mode": "docker", "exit_code": 0},
    )
    arguments = {"query": f"weather in city {index % 1000}", "limit": 5}
    return {
        **events.policy_decided(call, decision).fields,
        **events.tool_validated(call, arguments).fields,
        **events.execution_finished(call, result, "docker").fields,
    }


def bench_audit(
    records: int = 1_000_000,
    workdir: str | os.PathLike[str] | None = None,
    *,
    keep: bool = False,
) -> dict[str, Any]:
    """Write, verify, query and summarise an N-record audit log.

    Args:
        records: How many records to write.
        workdir: Where to put the log (default: a temporary directory); a
            fresh sub-directory is used and removed afterwards unless `keep`.
        keep: Leave the log on disk (its path is in the result).

    Returns:
        A JSON-ready dict: `write_us_p50/p95/p99`, `write_s`,
        `verify_records_per_s`, `verify_s`, `verify_ok`, `query_s`,
        `query_matches`, `stats_s`, `log_bytes`, `log_path`, `records`.
    """
    from runtime.audit.chain import HashChainSink
    from runtime.audit.query import RecordFilter, compute_stats, iter_records
    from runtime.audit.verify import verify

    base = Path(workdir) if workdir is not None else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="agentrt-bench-audit-", dir=base))
    log_path = directory / "audit.jsonl"
    key = "bench-audit-key"
    try:
        timings = array.array("d")
        clock = time.perf_counter_ns
        started = time.perf_counter()
        with HashChainSink(log_path, hmac_key=key) as sink:
            for index in range(records):
                fields = _fields(index)  # built outside the timed region
                before = clock()
                sink.write(Event.EXECUTION_FINISHED, fields)
                timings.append(clock() - before)
        write_s = time.perf_counter() - started
        ordered = sorted(timings)

        report = verify([log_path], key=key)

        started = time.perf_counter()
        matches = sum(
            1 for _ in iter_records([log_path], RecordFilter(tool="read_file", status="denied"))
        )
        query_s = time.perf_counter() - started

        started = time.perf_counter()
        stats = compute_stats([log_path])
        stats_s = time.perf_counter() - started

        log_bytes = sum(
            p.stat().st_size for p in directory.iterdir() if p.name != "audit.jsonl.lock"
        )
        return {
            "records": records,
            "write_s": round(write_s, 3),
            "write_us_p50": round(percentile(ordered, 0.50) / 1000, 2) if ordered else None,
            "write_us_p95": round(percentile(ordered, 0.95) / 1000, 2) if ordered else None,
            "write_us_p99": round(percentile(ordered, 0.99) / 1000, 2) if ordered else None,
            "verify_ok": report.ok,
            "verify_s": round(report.elapsed_s, 3),
            "verify_records_per_s": round(report.records_per_s),
            "query_s": round(query_s, 3),
            "query_matches": matches,
            "stats_s": round(stats_s, 3),
            "stats_calls": stats.calls,
            "log_bytes": log_bytes,
            "log_path": str(log_path) if keep else None,
        }
    finally:
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)


def register(bench_subparsers: Any) -> None:
    """Add `audit` to the `agentrt bench` sub-commands."""
    parser = bench_subparsers.add_parser(
        "audit", help="audit write latency, verify records/s and query time"
    )
    parser.add_argument("--records", type=int, default=1_000_000, help="log size (default 1M)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write the log")
    parser.add_argument("--keep", action="store_true", help="keep the log afterwards")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    result = bench_audit(args.records, args.workdir, keep=args.keep)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, value in result.items():
            print(f"{name:24s} {value}")
    floor_ok = result["verify_records_per_s"] >= 100_000
    if not floor_ok:
        print("verify throughput is below the 100k records/s floor")
    return 0 if result["verify_ok"] and floor_ok else 1
