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
from runtime.tools import Tool, ToolDefinitionError, ToolRegistry, tool

if TYPE_CHECKING:
    pass

__all__ = [
    "CallContext",
    "CallStatus",
    "ErrorInfo",
    "ExecutionResult",
    "Tool",
    "ToolCallRequest",
    "ToolDefinitionError",
    "ToolRegistry",
    "tool",
]

_LAZY: dict[str, str] = {}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'runtime' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
