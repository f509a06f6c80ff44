"""The executor seam: where a validated, approved call actually runs.

An executor takes a tool and arguments that already passed the gate and
returns an `ExecutionResult` with exactly one status. It never raises for a
tool's own failure; it may raise `asyncio.CancelledError` when the run is
cancelled, after cleaning up what it started.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from runtime.calls import CallContext, CallStatus, ErrorInfo, ExecutionResult, error_from_exception
from runtime.tools import Tool


@runtime_checkable
class ToolExecutor(Protocol):
    """Runs approved calls. Implementations: `InProcessExecutor`, `DockerExecutor`.

    An executor enforces each tool's `timeout_s` itself. One that makes a call
    wait for a resource before the tool starts (a container) may declare the
    longest such wait as a `sandbox_wait_s` attribute; the pipeline's backstop
    allows for it, and a call whose wait runs out must end `sandbox_error`,
    never `timeout`, since the tool did not run.
    """

    name: str

    async def execute(
        self, tool: Tool, arguments: Mapping[str, Any], context: CallContext
    ) -> ExecutionResult:
        """Run one call and report how it ended; never raise for a tool failure."""
        ...

    async def end_run(self, run_id: str) -> None:
        """Release anything kept for one agent run (a per-session container)."""
        ...

    async def aclose(self) -> None:
        """Stop background work and release every resource."""
        ...


class InProcessExecutor:
    """Runs tools in this process: only for trusted tools.

    Async tools are awaited on the loop; sync tools run in a worker thread so
    they never block the event loop. A thread cannot be killed, so a timed-out
    sync tool keeps running in the background until it returns: use the Docker
    executor for anything untrusted or unbounded.

    Args:
        allow_sandbox_only: Also run tools marked `requires_sandbox=True`.
    """

    name = "inprocess"

    def __init__(self, *, allow_sandbox_only: bool = False) -> None:
        self._allow_sandbox_only = allow_sandbox_only

    async def execute(
        self, tool: Tool, arguments: Mapping[str, Any], context: CallContext
    ) -> ExecutionResult:
        if tool.requires_sandbox and not self._allow_sandbox_only:
            return ExecutionResult(
                status=CallStatus.SANDBOX_ERROR,
                error=ErrorInfo(
                    type="sandbox_required",
                    message=(
                        f"tool {tool.name!r} must run in a sandbox; use the docker executor "
                        f"(--sandbox docker) or construct InProcessExecutor(allow_sandbox_only=True)"
                    ),
                ),
                sandbox={"mode": self.name},
            )
        started = time.perf_counter()
        try:
            async with asyncio.timeout(tool.timeout_s):
                if tool.is_async:
                    result = await tool.invoke(arguments)
                else:
                    result = await asyncio.to_thread(tool.invoke_sync, arguments)
        except TimeoutError:
            return ExecutionResult(
                status=CallStatus.TIMEOUT,
                error=ErrorInfo(
                    type="timeout",
                    message=f"tool {tool.name!r} ran longer than {tool.timeout_s:g} s",
                ),
                duration_ms=(time.perf_counter() - started) * 1000,
                sandbox={"mode": self.name},
            )
        except Exception as exc:  # a tool's own failure is a value, not a crash
            return ExecutionResult(
                status=CallStatus.TOOL_ERROR,
                error=error_from_exception(exc),
                duration_ms=(time.perf_counter() - started) * 1000,
                sandbox={"mode": self.name},
            )
        return ExecutionResult(
            status=CallStatus.OK,
            result=result,
            duration_ms=(time.perf_counter() - started) * 1000,
            sandbox={"mode": self.name},
        )

    async def end_run(self, run_id: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


class HostExecutor(InProcessExecutor):
    """Runs `Tool.runs_on_host` built-ins for sandboxing executors (mode `host`)."""

    name = "host"
