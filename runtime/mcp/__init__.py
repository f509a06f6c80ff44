"""MCP both ways: governed tools served over MCP, third-party MCP servers consumed.

- `serve`: `GovernedMcpServer` exposes a `Stack`'s tools to any MCP client,
  over stdio or streamable HTTP (bearer tokens from `runtime.auth` decide each
  call's tenant); every call goes through the same pipeline as `agentrt call`
  (gate, policy, approvals, sandbox, audit), and a refused call is an MCP tool
  error.
- `config`, `pins`, `connection`, `toolset`: MCP servers declared in a YAML
  file run sandboxed (stdio servers in a hardened container), their tools are
  pinned by definition hash and join the registry as `SERVER.TOOL`; each
  server starts at its first call.

The MCP SDK is an optional dependency (`pip install 'agent-runtime[mcp]'`);
the modules here import it lazily or at their own import, never from
`runtime/__init__.py`.
"""

from __future__ import annotations

INSTALL_HINT = "the MCP SDK is not installed: pip install 'agent-runtime[mcp]'"


class McpUnavailable(ImportError):
    """The `mcp` package is missing; the message says how to install it."""


def require_sdk() -> None:
    """Raise `McpUnavailable` with an install hint when the MCP SDK cannot be imported."""
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise McpUnavailable(INSTALL_HINT) from None
