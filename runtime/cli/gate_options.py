"""Options shared by the sub-commands that put calls through the gate (`call`, `run`, `demo`).

Each option maps onto one stage: `--module` (tools), `--policy` (decide),
`--sandbox` (execute), `--audit-log` (record). `build_stages` only parses
them into `runtime.stack.build_stack`, which builds the stages.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from runtime.audit.sink import AuditSink
    from runtime.mcp.toolset import ServerReport
    from runtime.policy.decision import PolicyEngine
    from runtime.stack import Stack
    from runtime.tools import ToolRegistry

DEFAULT_AUDIT_LOG = ".agentrt/audit/audit.jsonl"
DEFAULT_APPROVALS_DB = ".agentrt/approvals.db"


class UsageError(Exception):
    """Bad command-line input; printed as one line, exit code 2."""


def add_module_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--module",
        "-m",
        required=True,
        help="tool module: a dotted name (tools) or a path to a .py file",
    )


def add_gate_options(parser: argparse.ArgumentParser) -> None:
    """Add the policy, context, sandbox and audit options."""
    parser.add_argument(
        "--policy",
        metavar="DIR",
        default=os.environ.get("AGENTRT_POLICY_DIR") or None,
        help="policy directory or file (env AGENTRT_POLICY_DIR; default: the shipped "
        "least-privilege policy, which denies every tool it does not name); 'none' turns the "
        "policy stage off (every valid call is allowed)",
    )
    parser.add_argument(
        "--approvals-db",
        metavar="PATH",
        default=DEFAULT_APPROVALS_DB,
        help=f"where calls waiting for a human are kept (default: {DEFAULT_APPROVALS_DB})",
    )
    add_store_option(parser)
    parser.add_argument("--tenant", help="tenant the call is made for")
    parser.add_argument("--agent", help="agent name, for policy scopes and audit")
    parser.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra context value readable by policies as context.KEY (repeatable)",
    )
    parser.add_argument(
        "--sandbox",
        choices=["docker", "inprocess"],
        default=None,
        help="where tools run (default: docker; inprocess is for trusted tools only)",
    )
    parser.add_argument(
        "--workspace",
        metavar="DIR",
        default=None,
        help="host directory the file tools may read: mounted read-only at /workspace in "
        "the sandbox (in-process: sets AGENTRT_WORKSPACE)",
    )
    parser.add_argument(
        "--allow-unsandboxed",
        action="store_true",
        help="let tools marked requires_sandbox run in-process (trusted code only)",
    )
    parser.add_argument(
        "--audit-log",
        metavar="PATH",
        default=None,
        help=f"append audit records here (default: {DEFAULT_AUDIT_LOG}; 'none' disables)",
    )
    add_mcp_option(parser)


def add_mcp_option(parser: argparse.ArgumentParser) -> None:
    """`--mcp FILE`: MCP servers whose pinned tools join the registry (`build_stack(mcp=...)`)."""
    parser.add_argument(
        "--mcp",
        metavar="FILE",
        default=None,
        help="MCP servers file: their pinned tools join as SERVER.TOOL behind the same gate "
        "(pin them first with `agentrt mcp pin FILE`; needs pip install 'agent-runtime[mcp]')",
    )


def add_store_option(parser: argparse.ArgumentParser) -> None:
    """`--store URL`: the shared state store (approvals, paused runs, rate limits)."""
    parser.add_argument(
        "--store",
        metavar="URL",
        default=os.environ.get("AGENTRT_STORE") or None,
        help="shared state store: sqlite:///PATH or postgresql://USER@HOST:PORT/DB (env "
        "AGENTRT_STORE); approvals, paused runs and rate-limit windows live there "
        "(default: SQLite files under .agentrt/)",
    )


def load_registry(spec: str) -> ToolRegistry:
    """The tools of `--module`; a module that cannot be read is a usage error."""
    from runtime.stack import StackError, build_registry

    try:
        return build_registry(spec)
    except StackError as exc:
        raise UsageError(str(exc)) from None


def parse_context(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--context expects KEY=VALUE, got {pair!r}")
        values[key] = value
    return values


#: `--policy none` / `--audit-log none`: the explicit opt-outs.
NO_POLICY = "none"


def build_policy(flag: str | None) -> PolicyEngine:
    """`--policy`: the shipped default policy, a directory or file, or `none` (`allow_all()`).

    A directory that does not exist is an error, never "allow".
    """
    from runtime.policy.decision import allow_all
    from runtime.stack import StackError
    from runtime.stack import build_policy as load

    if flag is not None and flag.lower() == NO_POLICY:
        return allow_all()
    try:
        return load(flag)
    except StackError as exc:
        raise UsageError(str(exc)) from None


def build_audit(flag: str | None, policy: PolicyEngine | None) -> AuditSink | None:
    """`--audit-log`: the default hash-chained log, a path, or `none`."""
    from runtime.stack import StackError
    from runtime.stack import build_audit as open_log

    try:
        return open_log(audit_target(flag), policy)
    except StackError as exc:
        raise UsageError(str(exc)) from None


def audit_target(flag: str | None) -> str | None:
    """`--audit-log` as `build_stack` takes it: `none` → None, unset → the default log."""
    from runtime.stack import DEFAULT_AUDIT

    if flag is not None and flag.lower() == "none":
        return None
    return flag or DEFAULT_AUDIT


def build_stages(args: argparse.Namespace, *, pool_size: int = 0) -> Stack:
    """Parse the gate flags into `runtime.stack.build_stack`.

    Args:
        pool_size: Warm sandbox containers per tool config: 0 for a one-shot
            command, a few for agent runs.
    """
    from runtime.stack import StackError, build_stack
    from runtime.storage import StoreError

    policy_flag = getattr(args, "policy", None)
    store = getattr(args, "store", None)
    # A policy loaded here would keep its windows in the default SQLite file:
    # with a store, build_stack loads it over the store's windows instead.
    policy: PolicyEngine | str | None
    if store and (policy_flag is None or policy_flag.lower() != NO_POLICY):
        policy = policy_flag
    else:
        policy = build_policy(policy_flag)
    values = parse_context(getattr(args, "context", []))
    try:
        return build_stack(
            args.module,
            policy=policy,
            sandbox=getattr(args, "sandbox", None) or "docker",
            workspace=getattr(args, "workspace", None),
            allow_unsandboxed=getattr(args, "allow_unsandboxed", False),
            pool_size=pool_size,
            audit_log=audit_target(getattr(args, "audit_log", None)),
            approvals_db=getattr(args, "approvals_db", None) or None,
            store=store,
            tenant=getattr(args, "tenant", None),
            agent=getattr(args, "agent", None),
            context=values,
            mcp=getattr(args, "mcp", None),
        )
    except (StackError, StoreError) as exc:
        close = getattr(policy, "close", None)
        if close is not None:
            close()
        raise UsageError(str(exc)) from None


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")


def fail_usage(message: str) -> int:
    sys.stderr.write(f"agentrt: error: {message}\n")
    return 2


#: Exit code of `call` and `run` when the work was done (and printed) but the
#: audit log could not record all of it: the output has `audited: false`.
EXIT_NOT_AUDITED = 3


def warn_not_audited(problem: str) -> None:
    sys.stderr.write(f"agentrt: warning: not fully audited: {problem}\n")


def warn_refused_mcp_tools(reports: Iterable[ServerReport]) -> None:
    """One stderr line per MCP server that did not start or tool that is refused (`--mcp`)."""
    for report in reports:
        if report.error is not None:
            sys.stderr.write(f"agentrt: warning: MCP server {report.server_id}: {report.error}\n")
        for check in report.checks:
            if not check.offered:
                sys.stderr.write(f"agentrt: warning: {check.reason}\n")


def existing_dir(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is not a directory")
    return path
