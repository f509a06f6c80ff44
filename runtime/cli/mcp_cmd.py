"""`agentrt mcp serve|pin|diff`: governed tools over MCP, and pinning consumed MCP servers.

Exit codes: 0 done; 1 the command ran and found a problem (`diff` found
changes, `pin` could not reach a server); 2 refused before anything ran (bad
flags, a config that does not load, the MCP SDK missing).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any

from runtime.cli.gate_options import (
    UsageError,
    add_gate_options,
    add_module_option,
    build_stages,
    fail_usage,
)

if TYPE_CHECKING:
    from runtime.stack import Stack


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "mcp",
        help="serve governed tools over MCP; pin and diff consumed MCP servers",
        description="Model Context Protocol, both ways.",
    )
    actions = parser.add_subparsers(dest="mcp_action", metavar="ACTION", required=True)

    serve = actions.add_parser(
        "serve",
        help="expose --module's tools to MCP clients through the whole gate",
        description=(
            "Every tools/call passes strict parsing, the tool's schema, the policy, approvals, "
            "the sandbox and the audit log. A call that is invalid, denied or waits for approval "
            "is an MCP tool error (isError: true) saying why (and the approval id); the tool "
            "does not run. --tenant and --agent are the caller's identity for policy scopes."
        ),
    )
    add_module_option(serve)
    serve.add_argument(
        "--transport",
        choices=["stdio"],
        default="stdio",
        help="stdio (the client starts this command); streamable HTTP is not built yet",
    )
    add_gate_options(serve)
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from runtime.mcp import McpUnavailable, require_sdk

    try:
        require_sdk()
        stack = build_stages(args)
    except (UsageError, McpUnavailable) as exc:
        return fail_usage(str(exc))
    return asyncio.run(_serve_stdio(stack))


async def _serve_stdio(stack: Stack) -> int:
    from runtime.mcp.serve import serve_stdio

    try:
        await serve_stdio(stack)
    finally:
        problem = await stack.finish()
    if problem is not None:
        sys.stderr.write(f"agentrt: warning: {problem}\n")
        return 3
    return 0
