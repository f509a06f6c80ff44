"""agent-runtime: embed tool-using LLM agents behind a strict gate.

`import runtime` stays cheap: the model client, agent loop and executors are
imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.calls import (
    CallContext,
    CallStatus,
    ErrorInfo,
    ExecutionResult,
    ToolCallRequest,
)
from runtime.tools import SandboxSpec, Tool, ToolDefinitionError, ToolRegistry, tool

if TYPE_CHECKING:  # real types for type checkers; loaded on first use at run time
    from runtime.agent import Agent, RunLimits, RunResult, RunStatus
    from runtime.approvals.store import ApprovalStore
    from runtime.audit.chain import HashChainSink
    from runtime.model.client import ModelError, OpenAICompatibleClient
    from runtime.model.settings import SamplingSettings
    from runtime.pipeline import CallOutcome, ToolCallPipeline
    from runtime.policy.decision import allow_all
    from runtime.policy.loader import load_policies
    from runtime.sandbox.docker_executor import DockerExecutor
    from runtime.sandbox.executor import InProcessExecutor
    from runtime.stack import Stack, build_stack

__all__ = [
    "Agent",
    "ApprovalStore",
    "CallContext",
    "CallOutcome",
    "CallStatus",
    "DockerExecutor",
    "ErrorInfo",
    "ExecutionResult",
    "HashChainSink",
    "InProcessExecutor",
    "ModelError",
    "OpenAICompatibleClient",
    "RunLimits",
    "RunResult",
    "RunStatus",
    "SamplingSettings",
    "SandboxSpec",
    "Stack",
    "Tool",
    "ToolCallPipeline",
    "ToolCallRequest",
    "ToolDefinitionError",
    "ToolRegistry",
    "allow_all",
    "build_stack",
    "load_policies",
    "tool",
]

_LAZY: dict[str, str] = {
    "Agent": "runtime.agent",
    "RunLimits": "runtime.agent",
    "RunResult": "runtime.agent",
    "RunStatus": "runtime.agent",
    "OpenAICompatibleClient": "runtime.model.client",
    "SamplingSettings": "runtime.model.settings",
    "ModelError": "runtime.model.client",
    "ToolCallPipeline": "runtime.pipeline",
    "CallOutcome": "runtime.pipeline",
    "InProcessExecutor": "runtime.sandbox.executor",
    "DockerExecutor": "runtime.sandbox.docker_executor",
    "HashChainSink": "runtime.audit.chain",
    "load_policies": "runtime.policy.loader",
    "allow_all": "runtime.policy.decision",
    "ApprovalStore": "runtime.approvals.store",
    "Stack": "runtime.stack",
    "build_stack": "runtime.stack",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'runtime' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
