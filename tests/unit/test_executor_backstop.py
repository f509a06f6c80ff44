"""The pipeline's backstop on an executor that stops answering (issue 13, case 4).

The executor enforces a tool's timeout and its own waits; the pipeline only
abandons one that never reports, and says exactly that, with the time it waited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

import runtime.pipeline
from runtime import CallContext, CallStatus, ToolCallRequest, ToolRegistry, tool
from runtime.calls import ExecutionResult
from runtime.pipeline import ToolCallPipeline
from runtime.policy.decision import allow_all
from runtime.tools import Tool


@tool(timeout_s=0.05)
def quick() -> str:
    """Return at once."""
    return "done"


class _StuckExecutor:
    """Never reports; declares how long it may make a call wait for a sandbox."""

    name = "stuck"

    def __init__(self, sandbox_wait_s: float = 0.0) -> None:
        self.sandbox_wait_s = sandbox_wait_s
        self.entered = asyncio.Event()

    async def execute(
        self, tool: Tool, arguments: Mapping[str, Any], context: CallContext
    ) -> ExecutionResult:
        self.entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def end_run(self, run_id: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def test_an_executor_that_never_reports_is_abandoned_truthfully(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime.pipeline, "TIMEOUT_GRACE_S", 0.1)
    pipeline = ToolCallPipeline(ToolRegistry([quick]), _StuckExecutor(), policy=allow_all())
    outcome = await pipeline.process(ToolCallRequest("c1", "quick", "{}"), CallContext())
    assert outcome.status is CallStatus.TIMEOUT
    assert outcome.error is not None and outcome.error.type == "executor_timeout"
    assert "stuck executor did not report" in outcome.error.message
    assert "may have run" in outcome.error.message
    assert outcome.execution is not None and outcome.execution.duration_ms >= 150


async def test_the_backstop_allows_for_the_executors_declared_sandbox_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime.pipeline, "TIMEOUT_GRACE_S", 0.1)
    executor = _StuckExecutor(sandbox_wait_s=0.4)
    pipeline = ToolCallPipeline(ToolRegistry([quick]), executor, policy=allow_all())
    task = asyncio.create_task(
        pipeline.process(ToolCallRequest("c1", "quick", "{}"), CallContext())
    )
    await executor.entered.wait()
    done, _ = await asyncio.wait([task], timeout=0.3)  # past timeout + grace, within the wait
    assert not done
    outcome = await task
    assert outcome.status is CallStatus.TIMEOUT
    assert outcome.execution is not None and outcome.execution.duration_ms >= 550
