"""Shared state on a real PostgreSQL: exactly-once claims and rate limits across processes.

Each test gets an empty database on the server the `postgres_server` fixture
provides (scripts/test.sh starts one; pytest alone starts a temporary cluster).
Separate processes stand in for separate replicas: each opens its own pool.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from runtime.approvals import AlreadyClaimed, ApprovalStatus, ApprovalStore
from runtime.calls import CallContext
from runtime.policy.decision import PolicyDecision
from runtime.policy.loader import load_policies
from runtime.state_store import open_state_store
from runtime.storage import SchemaTooNew, StoreUnavailable

PENDING = PolicyDecision(decision="require_approval", reason="big refund", approval_timeout_s=600)
SPAWN = multiprocessing.get_context("spawn")

POLICY = """\
apiVersion: agentrt/v1
kind: ToolPolicy
metadata: {id: refunds}
rules:
  - {id: allow-refunds, effect: allow, tools: [issue_refund]}
limits:
  - {id: refund-rate, tools: [issue_refund], per: [tenant], rate: "10/minute"}
"""


def _pending(store: ApprovalStore, call_id: str = "c1", tenant: str = "acme") -> str:
    record = store.create(
        call_id=call_id,
        tool="issue_refund",
        arguments={"order_id": "A-1", "amount": 500},
        decision=PENDING,
        context=CallContext(tenant=tenant, run_id="run-1"),
        run_id="run-1",
        run_state={"run_id": "run-1", "messages": []},
    )
    return record.id


# ---------------------------------------------------------------- worker processes


def _claim_worker(url: str, approval_id: str, barrier: Any, results: Any) -> None:
    store = ApprovalStore.open(url)
    try:
        barrier.wait()
        try:
            claim = store.claim_for_execution(approval_id)
        except AlreadyClaimed:
            results.put(("lost", os.getpid()))
            return
        store.mark_executed(approval_id, claim.token, {"status": "ok", "by": os.getpid()})
        results.put(("won", os.getpid()))
    finally:
        store.close()


def _hold_claim_worker(url: str, approval_id: str, claimed: Any) -> None:
    store = ApprovalStore.open(url)
    store.claim_for_execution(approval_id)
    claimed.set()
    threading.Event().wait()  # "running the tool" until killed


def _rate_worker(url: str, policy_dir: str, calls: int, barrier: Any, results: Any) -> None:
    state = open_state_store(url)
    policy = load_policies(policy_dir, rate_limits=state.rate_limits)
    try:
        barrier.wait()
        allowed = 0
        for _ in range(calls):
            decision = policy.decide(
                "issue_refund", {"order_id": "A-1"}, CallContext(tenant="acme")
            )
            allowed += decision.decision == "allow"
        results.put(allowed)
    finally:
        state.close()


# ---------------------------------------------------------------- tests


def test_the_approval_life_cycle_on_postgres(postgres_url: str) -> None:
    store = ApprovalStore.open(postgres_url)
    try:
        approval_id = _pending(store)
        _pending(store, "c2", tenant="globex")
        assert [r.id for r in store.list(tenant="acme")] == [approval_id]
        assert store.load_run_state("run-1") == {"run_id": "run-1", "messages": []}
        assert store.get(approval_id[:8]).status is ApprovalStatus.PENDING
        store.approve(approval_id, by="alice", arguments={"order_id": "A-1", "amount": 90})
        claim = store.claim_for_execution(approval_id)
        done = store.mark_executed(approval_id, claim.token, {"status": "ok", "result": 1})
        assert done.status is ApprovalStatus.EXECUTED
        assert done.effective_arguments == {"order_id": "A-1", "amount": 90}
        with pytest.raises(AlreadyClaimed):
            store.claim_for_execution(approval_id)
    finally:
        store.close()


def test_one_claim_wins_among_processes(postgres_url: str) -> None:
    store = ApprovalStore.open(postgres_url)
    approval_id = _pending(store)
    store.approve(approval_id)
    workers = 6
    barrier, results = SPAWN.Barrier(workers), SPAWN.Queue()
    procs = [
        SPAWN.Process(target=_claim_worker, args=(postgres_url, approval_id, barrier, results))
        for _ in range(workers)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    assert sorted(kind for kind, _ in outcomes) == ["lost"] * (workers - 1) + ["won"]
    winner = next(pid for kind, pid in outcomes if kind == "won")
    record = store.get(approval_id)
    assert record.status is ApprovalStatus.EXECUTED and record.outcome["by"] == winner
    store.close()


def test_a_live_claimant_is_running_elsewhere_and_a_killed_one_interrupted(
    postgres_url: str,
) -> None:
    store = ApprovalStore.open(postgres_url)
    approval_id = _pending(store)
    store.approve(approval_id)
    claimed = SPAWN.Event()
    proc = SPAWN.Process(target=_hold_claim_worker, args=(postgres_url, approval_id, claimed))
    proc.start()
    try:
        assert claimed.wait(60)
        assert store.claim_holder(approval_id) == proc.pid
        with pytest.raises(AlreadyClaimed) as caught:
            store.claim_for_execution(approval_id)
        assert caught.value.record.status is ApprovalStatus.EXECUTING
        os.kill(proc.pid or 0, signal.SIGKILL)
        proc.join(30)
        # The server drops a dead session's locks: waiting ends without a sleep.
        record = store.wait_for_claim(approval_id, timeout_s=30)
        assert record.status is ApprovalStatus.EXECUTING and record.outcome is None
        assert store.claim_holder(approval_id) is None  # interrupted: for an operator
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        store.close()


def test_a_rate_limit_admits_its_capacity_across_processes(
    postgres_url: str, tmp_path: Path
) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY)
    workers, calls = 4, 8
    barrier, results = SPAWN.Barrier(workers), SPAWN.Queue()
    procs = [
        SPAWN.Process(
            target=_rate_worker, args=(postgres_url, str(tmp_path), calls, barrier, results)
        )
        for _ in range(workers)
    ]
    for proc in procs:
        proc.start()
    admitted = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    assert sum(admitted) == 10, admitted


def test_a_newer_schema_is_refused_with_a_clear_error(postgres_url: str) -> None:
    ApprovalStore.open(postgres_url).close()
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE agentrt_schema SET version = 99 WHERE component = 'approvals'")
    with pytest.raises(SchemaTooNew, match=r"schema version 99, newer than this agentrt knows"):
        ApprovalStore.open(postgres_url)


def test_an_unreachable_server_is_unavailable_and_hides_the_password() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    url = f"postgresql://agentrt:s3cret@127.0.0.1:{port}/x"
    with pytest.raises(StoreUnavailable) as caught:
        open_state_store(url, timeout_s=1)
    assert "s3cret" not in str(caught.value)
    assert f"127.0.0.1:{port}" in str(caught.value) and "unavailable" in str(caught.value)


def test_an_old_sqlite_file_is_migrated_in_place(tmp_path: Path) -> None:
    import sqlite3

    from runtime.approvals.store import APPROVAL_MIGRATIONS

    db = tmp_path / "approvals.db"
    with sqlite3.connect(db) as conn:  # as agentrt wrote it before schema versions
        conn.executescript(APPROVAL_MIGRATIONS[0].sql)
        conn.execute(
            "INSERT INTO approvals (id, run_id, call_id, tool, arguments, context, decision, "
            "status, created_at, expires_at) VALUES ('a1','r','c','t','{}',"
            """'{"tenant": "acme"}','{}','pending', 1, 9e12)"""
        )
    store = ApprovalStore(db)
    assert [r.id for r in store.list(tenant="acme")] == ["a1"]
    store.close()


def test_the_cli_keeps_approvals_in_the_store_it_is_given(
    postgres_url: str, tmp_path: Path
) -> None:
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    fixtures = root / "tests" / "fixtures"
    gate = [
        "--module", str(fixtures / "service_tools.py"), "--tool", "issue_refund",
        "--policy", str(fixtures / "service_policy"), "--store", postgres_url,
        "--tenant", "acme", "--sandbox", "inprocess", "--audit-log", "none",
    ]  # fmt: skip

    def agentrt(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(root), "AGENTRT_TEST_LEDGER": str(tmp_path / "l")}
        return subprocess.run(
            [sys.executable, "-m", "runtime", *args], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    asked = agentrt("call", *gate, "--args", '{"order_id": "A-9", "amount": 500}')
    assert asked.returncode == 1, asked.stderr
    approval_id = json.loads(asked.stdout)["approval_id"]
    listed = agentrt("approvals", "list", "--store", postgres_url, "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [approval_id]
    assert agentrt("approvals", "approve", approval_id, "--store", postgres_url).returncode == 0
    ran = agentrt("call", *gate, "--args", "{}", "--resume", approval_id)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert json.loads(ran.stdout)["status"] == "ok"
    assert (tmp_path / "l").read_text().count("refund A-9 500") == 1
    again = agentrt("call", *gate, "--args", "{}", "--resume", approval_id)
    assert json.loads(again.stdout)["status"] == "ok"  # the stored outcome, not a second run
    assert (tmp_path / "l").read_text().count("refund A-9 500") == 1
    assert not (tmp_path / ".agentrt" / "approvals.db").exists()  # nothing went to SQLite
    down = agentrt("approvals", "list", "--store", "postgresql://x@127.0.0.1:1/x")
    assert down.returncode == 2 and "unavailable" in down.stderr and "Traceback" not in down.stderr
