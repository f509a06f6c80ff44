"""`agentrt bench service`: runs/s and latency through HTTP, 1 vs 2 replicas; claims/s on PostgreSQL.

Everything is real but the model: `agentrt serve` processes (uvicorn) on one
PostgreSQL, the scripted OpenAI-compatible server answering each run in two
turns (one `echo` call, in-process, then an answer), and an HTTP client
keeping `concurrency` runs in flight, spread over the replicas. Approval
claims are measured on the store itself: `claim_for_execution` +
`mark_executed` from several workers, each with its own connection pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runtime.stats import percentile

__all__ = ["bench_claims", "bench_service"]

_POLICY = """\
apiVersion: agentrt/v1
kind: ToolPolicy
metadata: {id: bench-service}
rules:
  - {id: allow-echo, effect: allow, tools: [echo]}
"""
_TOKEN = "bench-token-0123456789"


def _reply(body: dict[str, Any]) -> Any:
    from runtime.testing import ScriptedReply

    if body["messages"][-1]["role"] == "tool":
        return ScriptedReply.message("done")
    return ScriptedReply.call("echo", {"text": "hi"})


@contextlib.contextmanager
def _postgres(store: str | None) -> Iterator[tuple[str, str]]:
    """A database URL: the one given, else a new one on a temporary server."""
    if store:
        yield store, "given"
        return
    from runtime.testing.postgres import TemporaryPostgres

    with TemporaryPostgres() as server:
        yield server.create_database("bench"), "temporary (fsync off)"


async def _load(urls: list[str], runs: int, concurrency: int) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {_TOKEN}"}
    clients = [httpx.AsyncClient(base_url=u, headers=headers, timeout=120) for u in urls]
    latencies: list[float] = []
    errors = 0
    next_run = 0

    async def worker() -> None:
        nonlocal next_run, errors
        while next_run < runs:
            index = next_run
            next_run += 1
            client = clients[index % len(clients)]
            started = time.perf_counter()
            reply = await client.post("/v1/runs", json={"input": f"echo {index}"})
            latencies.append(time.perf_counter() - started)
            if reply.status_code != 200 or reply.json().get("status") != "completed":
                errors += 1

    try:
        for client in clients:  # warm-up: connections, imports, first queries
            for _ in range(5):
                await client.post("/v1/runs", json={"input": "warm up"})
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    finally:
        for client in clients:
            await client.aclose()
    return {
        "replicas": len(urls),
        "runs": runs,
        "errors": errors,
        "wall_s": round(wall, 2),
        "runs_per_s": round(runs / wall, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
    }


def bench_service(
    *, runs: int = 200, concurrency: int = 8, store: str | None = None, claims: int = 400,
    claim_workers: int = 4,
) -> dict[str, Any]:  # fmt: skip
    """Measure 1 and 2 replicas on one PostgreSQL, then approval claims/s on it."""
    from runtime.testing import ScriptedServer

    figures: dict[str, Any] = {"cpus": os.cpu_count(), "concurrency": concurrency}
    with (
        tempfile.TemporaryDirectory(prefix="agentrt-bench-service-") as tmp,
        _postgres(store) as (url, kind),
        ScriptedServer(handler=_reply) as model,
    ):
        figures["store"] = f"postgresql ({kind})"
        workdir = Path(tmp)
        (workdir / "policy.yaml").write_text(_POLICY)
        (workdir / "tokens.yaml").write_text(f"tokens:\n  - {{token: {_TOKEN}, tenant: bench}}\n")
        for count in (1, 2):
            processes = []
            try:
                for index in range(count):
                    processes.append(_replica(workdir, url, model, f"r{count}-{index}"))
                result = asyncio.run(_load([p.url for p in processes], runs, concurrency))
            finally:
                for process in processes:
                    process.stop()
            figures[f"replicas_{count}"] = result
        figures["claims"] = bench_claims(url, claims=claims, workers=claim_workers)
    return figures


def _replica(workdir: Path, url: str, model: Any, name: str) -> Any:
    from runtime.testing.service import ServiceProcess

    args = [
        "--module", "runtime.bench.service_tools", "--policy", str(workdir / "policy.yaml"),
        "--store", url, "--tokens", str(workdir / "tokens.yaml"), "--sandbox", "inprocess",
        "--audit-log", str(workdir / name / "audit.jsonl"), "--replica", name,
        "--base-url", model.base_url, "--model", model.model, "--log-level", "warning",
    ]  # fmt: skip
    return ServiceProcess(args, cwd=workdir, log=workdir / f"{name}.log").start()


def bench_claims(url: str, *, claims: int = 400, workers: int = 4) -> dict[str, Any]:
    """Approval claims per second: `claim_for_execution` + `mark_executed`, `workers` at once."""
    from runtime.approvals import ApprovalStore, PendingCall
    from runtime.calls import CallContext
    from runtime.policy.decision import PolicyDecision

    decision = PolicyDecision(decision="require_approval", reason="bench")
    setup = ApprovalStore.open(url)
    try:
        run_id = f"bench-claims-{time.time_ns()}"
        records = setup.create_batch(
            [
                PendingCall(f"c{i}", "echo", {"text": str(i)}, decision, CallContext())
                for i in range(claims)
            ],
            run_id=run_id,
        )
        for record in records:
            setup.approve(record.id)
    finally:
        setup.close()
    ids = [r.id for r in records]
    stores = [ApprovalStore.open(url) for _ in range(workers)]
    won: list[int] = [0] * workers

    def work(index: int) -> None:
        store = stores[index]
        for approval_id in ids[index::workers]:
            claim = store.claim_for_execution(approval_id)
            store.mark_executed(approval_id, claim.token, {"status": "ok"})
            won[index] += 1

    try:
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(work, range(workers)))
        wall = time.perf_counter() - started
    finally:
        for store in stores:
            store.close()
    return {
        "claims": sum(won),
        "workers": workers,
        "wall_s": round(wall, 2),
        "claims_per_s": round(sum(won) / wall, 1),
    }
