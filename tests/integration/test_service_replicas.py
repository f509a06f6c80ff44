"""Two `agentrt serve` processes on one PostgreSQL: what one replica starts, the other can finish.

Each test gets a fresh database on the test server (see `postgres_url`); the
last one runs its own server, which it stops and starts again.
"""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx

from runtime.testing.postgres import TemporaryPostgres
from tests.service_support import ledger_lines, replicas, sse_events


def _refunds(ledger: Path, order: str) -> list[str]:
    return [line for line in ledger_lines(ledger) if f" {order} " in line]


def test_a_run_paused_on_a_is_approved_through_b_and_resumes_once(
    postgres_url: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    with (
        replicas(tmp_path, postgres_url, ("a", "b"), ledger) as (a, b),
        a.client() as on_a,
        b.client() as on_b,
    ):
        paused = on_a.post("/v1/runs", json={"input": "refund P-1 500"}).json()
        assert paused["status"] == "pending_approval"
        approval_id = paused["approval_ids"][0]
        assert approval_id in [x["id"] for x in on_b.get("/v1/approvals").json()["approvals"]]

        # Both replicas are asked at once: one approves and resumes, the other refuses.
        def approve(client: httpx.Client) -> httpx.Response:
            return client.post(f"/v1/approvals/{approval_id}/approve", json={"wait": True})

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            replies = list(pool.map(approve, (on_a, on_b)))
        assert sorted(r.status_code for r in replies) == [200, 409], [r.text for r in replies]
        winner = next(r for r in replies if r.status_code == 200).json()
        assert winner["run"]["status"] == "completed"
        assert len(_refunds(ledger, "P-1")) == 1

        for client in (on_a, on_b):
            run = client.get(f"/v1/runs/{paused['run_id']}").json()
            assert run["status"] == "completed"
            assert run["tool_calls"][0]["status"] == "ok"
        assert len(_refunds(ledger, "P-1")) == 1


def test_a_rate_limit_admits_n_calls_across_both_replicas(
    postgres_url: str, tmp_path: Path
) -> None:
    with (
        replicas(tmp_path, postgres_url, ("a", "b"), tmp_path / "ledger") as (a, b),
        a.client() as on_a,
        b.client() as on_b,
    ):

        def lookup(index: int) -> str:
            client = on_a if index % 2 else on_b
            run = client.post("/v1/runs", json={"input": f"lookup L-{index}"}).json()
            return str(run["tool_calls"][0]["status"])

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lookup, range(10)))
    assert statuses.count("ok") == 5, statuses  # lookup-rate: 5 per minute per tenant
    assert statuses.count("denied") == 5


def test_killing_a_replica_mid_call_leaves_an_honest_state_the_other_reports(
    postgres_url: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    with (
        replicas(tmp_path, postgres_url, ("a", "b"), ledger) as (a, b),
        a.client() as on_a,
        b.client() as on_b,
    ):
        paused = on_a.post("/v1/runs", json={"input": "slow K-1 500"}).json()
        run_id, approval_id = paused["run_id"], paused["approval_ids"][0]
        started = on_a.post(f"/v1/approvals/{approval_id}/approve", json={"wait": False})
        assert started.status_code == 200 and started.json()["run"]["status"] == "running"

        stages = []
        for name, event in sse_events(on_b, f"/v1/runs/{run_id}/events?after=0"):
            stages.append(name)
            if name == "started" and event.get("tool") == "slow_refund":
                a.kill()  # kill -9 while the approved call runs on A
        # B's stream ended on its own: it found A gone.
        assert "started" in stages and "run.finished" not in stages[stages.index("started") :]

        run = on_b.get(f"/v1/runs/{run_id}").json()
        assert run["status"] == "interrupted"
        assert "(a) stopped before it finished" in run["error"]
        assert approval_id in run["error"] and "may have run" in run["error"]
        approval = on_b.get(f"/v1/approvals/{approval_id}").json()
        assert approval["status"] == "executing"  # never re-run automatically
        again = on_b.post(f"/v1/approvals/{approval_id}/approve", json={"wait": True})
        assert again.status_code == 409
        assert len(_refunds(ledger, "K-1")) == 1  # started once, never again


def test_postgres_down_is_a_clear_503_and_nothing_half_done(tmp_path: Path) -> None:
    with TemporaryPostgres() as server:
        url = server.create_database("svc")
        with replicas(tmp_path, url, ("a",), tmp_path / "ledger") as (a,):
            assert a.model is not None
            with a.client() as client:
                paused = client.post("/v1/runs", json={"input": "refund Q-1 500"}).json()
                approval_id = paused["approval_ids"][0]
                asked = len(a.model.requests)

                server.stop()
                for method, path, body in (
                    ("POST", "/v1/runs", {"input": "lookup Q-2"}),
                    ("GET", "/v1/approvals", None),
                    ("POST", f"/v1/approvals/{approval_id}/approve", {"wait": True}),
                    ("GET", f"/v1/runs/{paused['run_id']}", None),
                ):
                    reply = client.request(method, path, json=body)
                    assert reply.status_code == 503, (path, reply.text)
                    error = reply.json()["error"]
                    assert error["type"] == "store_unavailable"
                    assert (
                        "PostgreSQL store" in error["message"] and "unavailable" in error["message"]
                    )
                assert client.get("/healthz").status_code == 200
                assert len(a.model.requests) == asked  # no run was started

                server.start()
                # the pool reconnects on its own; until it has, the store is still unavailable
                deadline = time.monotonic() + 30
                reply = client.get(f"/v1/approvals/{approval_id}")
                while reply.status_code == 503 and time.monotonic() < deadline:
                    reply = client.get(f"/v1/approvals/{approval_id}")
                approval = reply.json()
                assert approval["status"] == "pending"  # the refused approve changed nothing
                assert _refunds(a.ledger, "Q-1") == []
                done = client.post(f"/v1/approvals/{approval_id}/approve", json={"wait": True})
                assert done.status_code == 200 and done.json()["run"]["status"] == "completed"
                assert len(_refunds(a.ledger, "Q-1")) == 1


def test_replica_names_its_runs(postgres_url: str, tmp_path: Path) -> None:
    with (
        replicas(tmp_path, postgres_url, ("a",), tmp_path / "ledger") as (a,),
        a.client() as client,
    ):
        reply = client.post("/v1/runs", json={"input": "hi", "wait": False}).json()
        events = list(sse_events(client, f"/v1/runs/{reply['run_id']}/events"))
    assert events[0] == ("run.started", {"stage": "run.started", "replica": "a"})
    assert events[-1][1]["status"] == "completed"


def test_a_call_approved_with_the_cli_is_resumed_by_a_replica(
    postgres_url: str, tmp_path: Path
) -> None:
    import json
    import os
    import subprocess
    import sys

    ledger = tmp_path / "ledger"
    with (
        replicas(
            tmp_path, postgres_url, ("a", "b"), ledger, extra=("--resume-interval", "0.2")
        ) as (a, b),
        a.client() as on_a,
        b.client() as on_b,
    ):
        paused = on_a.post("/v1/runs", json={"input": "refund M-1 500"}).json()
        approval_id = paused["approval_ids"][0]
        root = Path(__file__).resolve().parents[2]
        approved = subprocess.run(
            [sys.executable, "-m", "runtime", "approvals", "approve", approval_id,
             "--store", postgres_url],
            env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        assert approved.returncode == 0, approved.stderr
        assert json.loads(approved.stdout)["status"] == "approved"
        # No HTTP call decided it: a replica's resume sweep picks the run up, once.
        finished = [
            event
            for name, event in sse_events(on_b, f"/v1/runs/{paused['run_id']}/events")
            if name == "run.finished"
        ]
        assert [e["status"] for e in finished] == ["pending_approval", "completed"]
        assert on_a.get(f"/v1/runs/{paused['run_id']}").json()["status"] == "completed"
        assert len(_refunds(ledger, "M-1")) == 1
