"""Under load, every run ends as it should (issue 13, "done when").

300 agent runs at once with in-process tools, and 50 at once with a Docker
container per call, each through the safe stack (`build_stack`: the shipped
policy, the hash-chained audit log): no errors, no call reported `timeout`
that did not time out, no container left behind, and the log verifies with
one final record per call.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from runtime import CallStatus
from runtime.agent import RunResult, RunStatus
from runtime.audit.query import compute_stats
from runtime.audit.verify import verify
from runtime.model import OpenAICompatibleClient
from runtime.stack import build_stack
from runtime.testing import ScriptedReply, ScriptedServer


def _load_model(body: dict[str, Any]) -> ScriptedReply:
    """Run N asks for N + 1: one `calculate` call, then the answer with its result."""
    last = body["messages"][-1]
    if last["role"] == "tool":
        return ScriptedReply.message(f"the answer is {last['content']}")
    match = re.search(r"run (\d+)", last["content"])
    assert match is not None
    return ScriptedReply.call("calculate", {"expression": f"{match.group(1)} + 1"})


async def _run_many(stack: Any, server: ScriptedServer, runs: int) -> list[RunResult]:
    client = OpenAICompatibleClient(server.base_url, server.model)
    agent = stack.agent(client, name="load")
    try:
        results = await asyncio.gather(
            *(agent.run(f"run {i}", tenant="load") for i in range(runs)), return_exceptions=True
        )
    finally:
        await client.aclose()
    crashed = [r for r in results if isinstance(r, BaseException)]
    assert crashed == []
    return [r for r in results if isinstance(r, RunResult)]


def _check(results: list[RunResult], log: Path, runs: int) -> None:
    assert [r.status for r in results] == [RunStatus.COMPLETED] * runs, {
        r.error for r in results if r.status is not RunStatus.COMPLETED
    }
    calls = [call for r in results for call in r.tool_calls]
    assert len(calls) == runs
    statuses = {call.status for call in calls}
    assert statuses == {CallStatus.OK}, [c.error for c in calls if c.status is not CallStatus.OK]
    assert sorted(call.result for call in calls) == list(range(1, runs + 1))
    assert all(call.audited for call in calls)
    report = verify([log])
    assert report.ok, report
    stats = compute_stats([log])
    assert stats.calls == runs and stats.runs == runs
    assert dict(stats.by_status) == {"ok": runs}


async def test_300_concurrent_in_process_runs(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    stack = build_stack(
        "tools", sandbox="inprocess", audit_log=log, approvals_db=None, tenant="load"
    )
    with ScriptedServer(handler=_load_model) as server:
        async with stack:
            results = await _run_many(stack, server, 300)
    _check(results, log, 300)


@pytest.mark.docker
async def test_50_concurrent_docker_runs(tmp_path: Path) -> None:
    import docker

    from runtime.sandbox.docker_executor import DockerExecutor
    from runtime.sandbox.hardening import LABEL_EXECUTOR

    log = tmp_path / "audit.jsonl"
    # Other test suites share this engine: allow a generous wait for a container,
    # so that a slow engine shows as waiting, never as a tool's timeout.
    executor = DockerExecutor(pool_size=4, sandbox_wait_s=180)
    stack = build_stack("tools", sandbox=executor, audit_log=log, approvals_db=None)
    with ScriptedServer(handler=_load_model) as server:
        async with stack:
            results = await _run_many(stack, server, 50)
    _check(results, log, 50)
    calls = [call for r in results for call in r.tool_calls]
    assert all(call.execution is not None for call in calls)
    ids = {call.execution.sandbox["container_id"] for call in calls if call.execution}
    assert len(ids) == 50  # a container per call, never reused
    client = docker.from_env(version="auto")
    try:
        left = client.containers.list(
            all=True, filters={"label": f"{LABEL_EXECUTOR}={executor.id}"}
        )
    finally:
        client.close()
    assert left == []
