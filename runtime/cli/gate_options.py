"""Options shared by the sub-commands that put calls through the gate (`call`, `run`, `demo`).

Each option maps onto one stage: `--module` (tools), `--policy` (decide),
`--sandbox` (execute), `--audit-log` (record). `build_stages` constructs them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.audit.sink import AuditSink
from runtime.calls import CallContext
from runtime.cli.policy_cmd import context_from_mapping
from runtime.module_loader import ModuleLoadError, load_module
from runtime.sandbox.executor import ToolExecutor
from runtime.tools import ToolDefinitionError, ToolRegistry

if TYPE_CHECKING:
    from runtime.policy.approvals import ApprovalStore
    from runtime.policy.engine import PolicySet

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


def load_registry(spec: str) -> ToolRegistry:
    try:
        module = load_module(spec)
        registry = ToolRegistry.from_module(module)
    except (ModuleLoadError, ToolDefinitionError) as exc:
        raise UsageError(str(exc)) from None
    if not len(registry):
        raise UsageError(f"module {spec!r} defines no @tool functions")
    return registry


def parse_context(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--context expects KEY=VALUE, got {pair!r}")
        values[key] = value
    return values


@dataclasses.dataclass
class Stages:
    """The constructed stages a command composes into a pipeline or agent."""

    registry: ToolRegistry
    executor: ToolExecutor
    policy: PolicySet | None
    audit: AuditSink | None
    context: CallContext
    approvals: ApprovalStore | None = None

    async def aclose(self) -> None:
        await self.executor.aclose()
        if self.audit is not None:
            self.audit.close()
        if self.approvals is not None:
            self.approvals.close()

    async def finish(self) -> str | None:
        """Close every stage; return why the audit log could not be closed, if it could not.

        Closing signs the log's final checkpoint, the last write a full disk
        can refuse. The command has already done its work by then: it prints
        that work and reports this, rather than dying with a traceback.
        """
        from runtime.audit.sink import AuditWriteError

        try:
            await self.executor.aclose()
        finally:
            problem = None
            try:
                if self.audit is not None:
                    self.audit.close()
            except AuditWriteError as exc:
                problem = f"the audit log could not be closed: {exc}"
            finally:
                if self.approvals is not None:
                    self.approvals.close()
        return problem


def build_executor(
    kind: str | None,
    *,
    allow_unsandboxed: bool,
    pool_size: int = 0,
    workspace: str | None = None,
) -> ToolExecutor:
    """Docker by default; in-process only when asked for (trusted tools).

    A Docker problem (daemon down, image missing) is not refused here: each
    call then ends in `sandbox_error` with a message saying how to fix it.
    """
    if kind == "inprocess":
        from runtime.sandbox.executor import InProcessExecutor

        if workspace is not None:
            os.environ["AGENTRT_WORKSPACE"] = str(Path(workspace).resolve())
        return InProcessExecutor(allow_sandbox_only=allow_unsandboxed)
    from runtime.sandbox.docker_executor import DockerExecutor
    from runtime.sandbox.hardening import SandboxConfigError
    from runtime.tools import Mount

    mounts = []
    if workspace is not None:
        mounts.append(Mount(source=str(Path(workspace).resolve()), target="/workspace"))
    try:
        return DockerExecutor(pool_size=pool_size, mounts=mounts)
    except SandboxConfigError as exc:
        raise UsageError(str(exc)) from None


#: `--policy none`: the explicit opt-out of the policy stage.
NO_POLICY = "none"


def build_policy(directory: str | None) -> PolicySet | None:
    """Load the policy set, refusing to start on any problem (never run with fewer rules).

    `None` (no `--policy`) means the shipped default policy; only an explicit
    `none` turns the stage off. A directory that does not exist is an error,
    never "allow".
    """
    from runtime.policy.loader import PolicyLoadError, default_policy_dir, load_policies

    if directory is not None and directory.lower() == NO_POLICY:
        return None
    source = Path(directory) if directory is not None else default_policy_dir()
    if not source.exists():
        raise UsageError(
            f"policy directory {source} does not exist (give an existing directory or "
            f"file, or --policy none to run without a policy)"
        )
    try:
        return load_policies(source)
    except PolicyLoadError as exc:
        raise UsageError(str(exc)) from None


def build_audit(path: str | None, policy: PolicySet | None) -> AuditSink | None:
    """The hash-chained audit log (default `.agentrt/audit/audit.jsonl`); 'none' disables it."""
    if path is not None and path.lower() == "none":
        return None
    from runtime.audit.chain import HashChainSink, default_audit_log_path
    from runtime.audit.sink import AuditWriteError

    target = Path(path) if path else default_audit_log_path()
    try:
        return HashChainSink(target, redact_paths=policy.redact_paths if policy else ())
    except AuditWriteError as exc:
        raise UsageError(f"cannot open the audit log {target}: {exc}") from None


def build_stages(args: argparse.Namespace, *, pool_size: int = 0) -> Stages:
    """Construct every stage from the command line.

    Args:
        pool_size: Warm sandbox containers per tool config: 0 for a one-shot
            command, a few for agent runs.
    """
    registry = load_registry(args.module)
    policy = build_policy(getattr(args, "policy", None))
    values = parse_context(getattr(args, "context", []))
    values.update(
        {k: getattr(args, k, None) for k in ("tenant", "agent") if getattr(args, k, None)}
    )
    context = context_from_mapping(values)
    audit = build_audit(getattr(args, "audit_log", None), policy)
    executor = build_executor(
        getattr(args, "sandbox", None),
        allow_unsandboxed=getattr(args, "allow_unsandboxed", False),
        pool_size=pool_size,
        workspace=getattr(args, "workspace", None),
    )
    approvals = None
    if policy is not None and getattr(args, "approvals_db", None):
        from runtime.policy.approvals import ApprovalStore

        approvals = ApprovalStore(args.approvals_db)
    return Stages(registry, executor, policy, audit, context, approvals)


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


def existing_dir(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is not a directory")
    return path
