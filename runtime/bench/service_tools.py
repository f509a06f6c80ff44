"""The tool `agentrt bench service` runs in-process: cheap, so the service is what is measured."""

from __future__ import annotations

from runtime.tools import tool


@tool(timeout_s=10)
def echo(text: str) -> str:
    """Return the text.

    Args:
        text: Any text.
    """
    return text
