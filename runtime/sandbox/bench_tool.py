"""`bench_echo`, the sandbox benchmark's trivial tool, in a module that imports nothing else.

Containers import the tool's module before they are ready; keeping it bare
means the benchmark measures the sandbox, not a module's imports.
"""

from __future__ import annotations

from runtime.tools import tool


@tool(timeout_s=30.0)
def bench_echo(value: int) -> int:
    """Return the value unchanged (the benchmark's trivial tool).

    Args:
        value: Any integer.
    """
    return value
