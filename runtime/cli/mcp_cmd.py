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
    print_json,
    warn_refused_mcp_tools,
)

if TYPE_CHECKING:
    from runtime.auth import TokenTable
    from runtime.mcp.toolset import McpToolset, ServerReport
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
            "does not run. Over stdio, --tenant and --agent are the caller's identity for policy "
            "scopes; over HTTP every request needs `Authorization: Bearer TOKEN` (else 401) and "
            "the token's entry in --tokens decides the tenant (and agent)."
        ),
    )
    add_module_option(serve)
    serve.add_argument(
        "--transport",
        choices=["stdio", "http"],
        default="stdio",
        help="stdio (the client starts this command) or http (streamable HTTP at /mcp)",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="http: address to listen on (default: 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=int, metavar="P", help="http: port to listen on (0 picks a free one)"
    )
    serve.add_argument(
        "--tokens",
        metavar="FILE",
        help="http: YAML tokens file, `tokens: [{token: ..., tenant: ..., agent: ...}]` "
        "(agent optional; --agent is the default for entries without one)",
    )
    add_gate_options(serve)
    serve.set_defaults(handler=_serve)

    pin = actions.add_parser(
        "pin",
        help="list each server's tools and pin their definitions in the lock file",
        description=(
            "Starts each server of FILE (stdio ones in the Docker sandbox), lists its tools and "
            "writes the SHA-256 of each definition (name, description, input schema) to the "
            "lock file next to FILE (mcp.yaml -> mcp.lock). At start-up only pinned, unchanged "
            "tools are offered. Exit 1 when a server could not be listed (its pins are kept)."
        ),
    )
    pin.add_argument("file", metavar="FILE", help="MCP servers file (YAML)")
    pin.add_argument("--workspace", metavar="DIR", help="for servers with workspace: true")
    pin.add_argument("--json", action="store_true", help="print a JSON report")
    pin.set_defaults(handler=_pin)

    diff = actions.add_parser(
        "diff",
        help="show which tools changed, appeared or vanished since they were pinned",
        description="Exit 0 when every server publishes exactly its pins, 1 otherwise.",
    )
    diff.add_argument("file", metavar="FILE", help="MCP servers file (YAML)")
    diff.add_argument("--workspace", metavar="DIR", help="for servers with workspace: true")
    diff.add_argument("--json", action="store_true", help="print a JSON report")
    diff.set_defaults(handler=_diff)


def _serve(args: argparse.Namespace) -> int:
    from runtime.auth import TokenFileError, load_tokens
    from runtime.mcp import McpUnavailable, require_sdk

    tokens: TokenTable | None = None
    try:
        require_sdk()
        if args.transport == "http":
            if args.port is None or not 0 <= args.port <= 65535:
                raise UsageError("--transport http needs --port P (0 to 65535; 0 picks one)")
            if args.tokens is None:
                raise UsageError(
                    "--transport http needs --tokens FILE: every request must carry a bearer "
                    "token, and the token decides the tenant"
                )
            if args.tenant is not None:
                raise UsageError(
                    "--tenant does not apply to --transport http: each token's entry in "
                    "--tokens names its tenant"
                )
            tokens = load_tokens(args.tokens)
        elif args.port is not None or args.tokens is not None:
            raise UsageError("--port and --tokens are for --transport http")
        stack = build_stages(args)
    except (UsageError, McpUnavailable, TokenFileError) as exc:
        return fail_usage(str(exc))
    return asyncio.run(_serve_on(stack, args, tokens))


def _pin(args: argparse.Namespace) -> int:
    return _with_toolset(args, pin=True)


def _diff(args: argparse.Namespace) -> int:
    return _with_toolset(args, pin=False)


def _with_toolset(args: argparse.Namespace, *, pin: bool) -> int:
    from runtime.mcp import McpUnavailable, require_sdk

    try:
        require_sdk()
    except McpUnavailable as exc:
        return fail_usage(str(exc))
    from runtime.mcp.config import McpConfigError
    from runtime.mcp.pins import LockError
    from runtime.mcp.toolset import McpToolset

    try:
        toolset = McpToolset.from_file(args.file, workspace=args.workspace)
    except (McpConfigError, LockError) as exc:
        return fail_usage(str(exc))
    return asyncio.run(_pin_or_diff(toolset, args, pin=pin))


async def _pin_or_diff(toolset: McpToolset, args: argparse.Namespace, *, pin: bool) -> int:
    from runtime.mcp.config import lock_path
    from runtime.mcp.toolset import live_reports, pinned_lock

    try:
        reports = await live_reports(toolset)
    finally:
        await toolset.aclose()
    failed = any(r.error is not None for r in reports)
    changed = any(not c.offered for r in reports for c in r.checks)
    if pin:
        pinned_lock(toolset, reports).write(lock_path(args.file))
    if args.json:
        print_json({"lock": str(lock_path(args.file)), "servers": [r.to_dict() for r in reports]})
    else:
        for report in reports:
            _print_report(report, pin=pin)
        if pin:
            print(f"wrote {lock_path(args.file)}")
    return 1 if failed or (changed and not pin) else 0


def _print_report(report: ServerReport, *, pin: bool) -> None:
    if report.error is not None:
        print(f"{report.server_id}: not listed: {report.error}")
        return
    for check in report.checks:
        qualified = f"{report.server_id}.{check.name}"
        if check.state == "pinned":
            print(f"  = {qualified}" if not pin else f"  pinned {qualified} (unchanged)")
        elif pin:
            verb = {"new": "pinned", "changed": "re-pinned", "removed": "dropped"}[check.state]
            print(f"  {verb} {qualified}")
        else:
            mark = {"new": "+", "changed": "~", "removed": "-"}[check.state]
            print(f"  {mark} {qualified}: {check.reason}")


async def _serve_on(stack: Stack, args: argparse.Namespace, tokens: TokenTable | None) -> int:
    from runtime.mcp.serve import serve_http, serve_stdio

    def listening(url: str) -> None:
        sys.stderr.write(f"agentrt: serving MCP (streamable HTTP) at {url}\n")
        sys.stderr.flush()

    try:
        warn_refused_mcp_tools(await stack.open())
        if tokens is None:
            await serve_stdio(stack)
        else:
            try:
                await serve_http(
                    stack, tokens, host=args.host, port=args.port, on_listening=listening
                )
            except OSError as exc:
                sys.stderr.write(
                    f"agentrt: error: cannot listen on {args.host}:{args.port}: {exc}\n"
                )
                return 1
    finally:
        problem = await stack.finish()
    if problem is not None:
        sys.stderr.write(f"agentrt: warning: {problem}\n")
        return 3
    return 0
