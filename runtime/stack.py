"""The safe stack, built in one place: tools, policy, sandbox, audit, approvals, context.

`build_stack` turns plain arguments into the stages every call goes through,
with the safe choice as each default: the shipped least-privilege policy
(default deny), a hardened Docker sandbox per call, the hash-chained audit log
with the policy's `audit.redact` paths wired in, and an approval store for
calls that need a human. The CLI only parses its flags into these arguments;
library users call it the same way::

    stack = build_stack("tools", policy="policies/", audit_log="audit.jsonl")
    async with stack:
        agent = stack.agent(OpenAICompatibleClient(url, model))
        result = await agent.run("What is 2 + 3?", **stack.run_context())

Opting out of a stage is explicit: `policy=allow_all()`,
`sandbox="inprocess"` (trusted tools only), `audit_log=None`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from runtime.approvals.store import DEFAULT_APPROVALS_DB
from runtime.audit.sink import AuditSink, AuditWriteError
from runtime.calls import CallContext
from runtime.policy.decision import AllowAllPolicy, PolicyEngine
from runtime.sandbox.executor import ToolExecutor
from runtime.tools import Tool, ToolRegistry

if TYPE_CHECKING:
    from runtime.agent import Agent
    from runtime.approvals.store import ApprovalStore
    from runtime.mcp.toolset import McpToolset, ServerReport
    from runtime.model.client import ModelClient
    from runtime.pipeline import ToolCallPipeline
    from runtime.policy.ratelimit import RateLimitStore
    from runtime.state_store import StateStore

__all__ = [
    "DEFAULT_APPROVALS_DB",
    "Stack",
    "StackError",
    "build_audit",
    "build_executor",
    "build_policy",
    "build_registry",
    "build_stack",
    "call_context",
]

#: `audit_log` default: `$AGENTRT_AUDIT_LOG`, else `.agentrt/audit/audit.jsonl`.
DEFAULT_AUDIT = "default"

SandboxKind = Literal["docker", "inprocess"]
_CONTEXT_FIELDS = ("tenant", "agent", "conversation_id", "run_id", "principal")


class StackError(ValueError):
    """A stage cannot be built as asked; the message is one sentence saying what to change."""


def build_registry(tools: ToolRegistry | Iterable[Tool] | str) -> ToolRegistry:
    """The tools: a registry, `Tool`s, or a module (dotted name or `.py` path) to read.

    Raises:
        StackError: The module cannot be imported, or defines no `@tool` functions.
    """
    if isinstance(tools, ToolRegistry):
        return tools
    if not isinstance(tools, str):
        return ToolRegistry(tools)
    from runtime.module_loader import ModuleLoadError, load_module
    from runtime.tools import ToolDefinitionError

    try:
        registry = ToolRegistry.from_module(load_module(tools))
    except (ModuleLoadError, ToolDefinitionError) as exc:
        raise StackError(str(exc)) from None
    if not len(registry):
        raise StackError(f"module {tools!r} defines no @tool functions")
    return registry


def build_policy(
    policy: PolicyEngine | str | os.PathLike[str] | None,
    *,
    rate_limits: RateLimitStore | None = None,
) -> PolicyEngine:
    """The decide stage: an engine as given, or a policy set loaded all-or-nothing.

    Args:
        policy: `None` for the shipped least-privilege policy (default deny),
            a directory or file of policy YAML, or any `PolicyEngine`
            (`allow_all()` is the explicit opt-out).
        rate_limits: Where a loaded policy's windows live (default: SQLite at
            `.agentrt/ratelimits.db`); ignored for an engine given as is.

    Raises:
        StackError: The path does not exist (never read as "allow"), or a
            file is invalid.
    """
    if policy is not None and not isinstance(policy, (str, os.PathLike)):
        return policy
    from runtime.policy.loader import PolicyLoadError, default_policy_dir, load_policies

    source = Path(policy) if policy is not None else default_policy_dir()
    if not source.exists():
        raise StackError(
            f"policy directory {source} does not exist (give an existing directory or file, "
            f"or allow_all() / --policy none to run without a policy)"
        )
    try:
        return load_policies(source, rate_limits=rate_limits)
    except PolicyLoadError as exc:
        raise StackError(str(exc)) from None


def build_audit(
    audit_log: str | os.PathLike[str] | AuditSink | None, policy: PolicyEngine | None = None
) -> AuditSink | None:
    """The record stage: a hash-chained log with `policy`'s redaction paths, or `None`.

    Args:
        audit_log: `DEFAULT_AUDIT` (`$AGENTRT_AUDIT_LOG`, else
            `.agentrt/audit/audit.jsonl`), a path, a sink of your own, or
            `None` for no audit log.
        policy: Its `redact_paths` are redacted in every record.

    Raises:
        StackError: The log cannot be opened (locked by another writer, unwritable).
    """
    if audit_log is None:
        return None
    if not isinstance(audit_log, (str, os.PathLike)):
        return audit_log
    from runtime.audit.chain import HashChainSink, default_audit_log_path

    target = default_audit_log_path() if audit_log == DEFAULT_AUDIT else Path(audit_log)
    try:
        return HashChainSink(target, redact_paths=getattr(policy, "redact_paths", ()))
    except AuditWriteError as exc:
        raise StackError(f"cannot open the audit log {target}: {exc}") from None


def build_executor(
    sandbox: SandboxKind | ToolExecutor,
    *,
    allow_unsandboxed: bool = False,
    pool_size: int = 0,
    workspace: str | os.PathLike[str] | None = None,
) -> ToolExecutor:
    """The execute stage: Docker by default, in-process only when asked (trusted tools).

    A Docker problem (daemon down, image missing) is not refused here: each
    call then ends in `sandbox_error` with a message saying how to fix it.

    Args:
        sandbox: `docker`, `inprocess`, or an executor of your own.
        allow_unsandboxed: Let tools marked `requires_sandbox` run in-process.
        pool_size: Warm containers per tool configuration (Docker).
        workspace: Host directory the file tools may read: mounted read-only
            at `/workspace` (in-process: `AGENTRT_WORKSPACE`).

    Raises:
        StackError: The sandbox configuration is invalid.
    """
    if not isinstance(sandbox, str):
        return sandbox
    if sandbox == "inprocess":
        from runtime.sandbox.executor import InProcessExecutor

        if workspace is not None:
            os.environ["AGENTRT_WORKSPACE"] = str(Path(workspace).resolve())
        return InProcessExecutor(allow_sandbox_only=allow_unsandboxed)
    if sandbox != "docker":
        raise StackError(f"sandbox must be 'docker' or 'inprocess', not {sandbox!r}")
    from runtime.sandbox.docker_executor import DockerExecutor
    from runtime.sandbox.hardening import SandboxConfigError
    from runtime.tools import Mount

    mounts = []
    if workspace is not None:
        mounts.append(Mount(source=str(Path(workspace).resolve()), target="/workspace"))
    try:
        return DockerExecutor(pool_size=pool_size, mounts=mounts)
    except SandboxConfigError as exc:
        raise StackError(str(exc)) from None


def call_context(values: Mapping[str, Any]) -> CallContext:
    """A `CallContext`: known names (tenant, agent, principal, ...) become fields, the rest `extra`."""
    fields = {k: values[k] for k in _CONTEXT_FIELDS if values.get(k) is not None}
    extra = {k: v for k, v in values.items() if k not in _CONTEXT_FIELDS}
    return CallContext(**fields, extra=extra)


@dataclasses.dataclass
class Stack:
    """The constructed stages, ready to compose into an agent or a one-call pipeline.

    Close it when done (`async with stack:` or `await stack.finish()`): that
    stops sandbox containers, signs the audit log's last checkpoint and
    closes the approval store (and the shared state store it was built on,
    when the stack opened it).
    """

    registry: ToolRegistry
    executor: ToolExecutor
    policy: PolicyEngine
    audit: AuditSink | None
    context: CallContext
    approvals: ApprovalStore | None = None
    mcp: McpToolset | None = None
    state: StateStore | None = None
    owns_state: bool = True

    async def open(self) -> list[ServerReport]:
        """Register the MCP servers' pinned tools; no server starts before its first call.

        Each server's pinned tools join the registry as `SERVER.TOOL` from the
        lock file. A server starts at the first call to one of its tools; a
        tool it no longer publishes as pinned (changed, removed) ends that call
        `unknown_tool` naming the change, and is refused from then on, as are
        tools it added. A server without pins offers nothing and never starts.
        Without `mcp` this does nothing.

        Returns:
            One report per MCP server: its pinned tools, or why none are offered.
        """
        if self.mcp is None:
            return []
        return await self.mcp.register(self.registry)

    def agent(self, model: ModelClient, **options: Any) -> Agent:
        """An `Agent` over these stages; `options` are `Agent`'s other arguments."""
        from runtime.agent import Agent

        options.setdefault("name", self.context.agent or "agent")
        return Agent(
            model,
            self.registry,
            executor=self.executor,
            policy=self.policy,
            audit=self.audit,
            approvals=self.approvals,
            **options,
        )

    def pipeline(self, **options: Any) -> ToolCallPipeline:
        """A `ToolCallPipeline` over these stages (one call, no model)."""
        from runtime.pipeline import ToolCallPipeline

        options.setdefault("agent_name", self.context.agent)
        return ToolCallPipeline(
            self.registry, self.executor, policy=self.policy, audit=self.audit, **options
        )

    def run_context(self) -> dict[str, Any]:
        """`Agent.run` keyword arguments for this stack's context (tenant, principal, extra)."""
        return {
            "tenant": self.context.tenant,
            "principal": self.context.principal,
            "context": dict(self.context.extra),
        }

    async def aclose(self) -> None:
        """Close every stage; an audit log that cannot be closed raises `AuditWriteError`."""
        problem = await self.finish()
        if problem is not None:
            raise AuditWriteError(problem)

    async def finish(self) -> str | None:
        """Close every stage; return why the audit log could not be closed, if it could not.

        Closing signs the log's final checkpoint, the last write a full disk
        can refuse. The work is done by then: a caller prints that work and
        reports this, rather than dying with a traceback.
        """
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
                if self.state is not None:
                    if self.owns_state:
                        self.state.close()
                elif self.approvals is not None:
                    self.approvals.close()
        return problem

    async def __aenter__(self) -> Stack:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def build_stack(
    tools: ToolRegistry | Iterable[Tool] | str,
    *,
    policy: PolicyEngine | str | os.PathLike[str] | None = None,
    sandbox: SandboxKind | ToolExecutor = "docker",
    workspace: str | os.PathLike[str] | None = None,
    allow_unsandboxed: bool = False,
    pool_size: int = 0,
    audit_log: str | os.PathLike[str] | AuditSink | None = DEFAULT_AUDIT,
    approvals_db: str | os.PathLike[str] | None = DEFAULT_APPROVALS_DB,
    store: str | StateStore | None = None,
    tenant: str | None = None,
    agent: str | None = None,
    principal: str | None = None,
    context: Mapping[str, Any] | None = None,
    mcp: str | os.PathLike[str] | None = None,
) -> Stack:
    """Build every stage of the gate from plain arguments, safe choices by default.

    Args:
        tools: A `ToolRegistry`, `Tool`s, or a module (`tools`, `path/to/tools.py`).
        policy: `None` for the shipped least-privilege policy (default deny), a
            policy directory or file, or a `PolicyEngine` (`allow_all()` opts out).
        sandbox: `docker` (hardened container per call), `inprocess` (trusted
            tools only), or an executor of your own.
        workspace: Host directory the file tools may read (read-only).
        allow_unsandboxed: Let `requires_sandbox` tools run in-process.
        pool_size: Warm sandbox containers per tool configuration: 0 for one
            call, a few for agent runs.
        audit_log: `DEFAULT_AUDIT`, a path, a sink, or `None` for no audit log.
            The policy's `audit.redact` paths are redacted in every record.
        approvals_db: Where calls waiting for a human are kept (SQLite); `None`
            for none. Not opened with `allow_all()`, which never asks a human.
        store: The shared state store instead: a URL (`sqlite:///PATH`,
            `postgresql://…`; the stack opens and closes it) or an open
            `StateStore` (left open). Approvals, paused runs and the policy's
            rate-limit windows all live there; `approvals_db` is then unused.
        tenant: Who the calls are made for (policy scopes, audit).
        agent: The agent's name (policy scopes, audit).
        principal: The end user on whose behalf the agent acts.
        context: Extra values policies read as `context.<name>`.
        mcp: An MCP servers file: their pinned tools join the registry as
            `SERVER.TOOL` when the stack is opened (`await stack.open()`), and
            calls to them are forwarded to the servers, each started at its
            first call (stdio ones in the Docker sandbox). Needs the `mcp` extra.

    Raises:
        StackError: A stage cannot be built; nothing is left open.
        StoreUnavailable: The store's PostgreSQL cannot be reached.
        SchemaTooNew: The store was migrated by a newer agentrt.
    """
    registry = build_registry(tools)
    state, owns_state = _open_state(store)
    try:
        engine = build_policy(policy, rate_limits=state.rate_limits if state else None)
    except BaseException:
        if state is not None and owns_state:
            state.close()
        raise
    values: dict[str, Any] = dict(context or {})
    values.update(
        {k: v for k, v in (("tenant", tenant), ("agent", agent), ("principal", principal)) if v}
    )
    audit = None
    try:
        audit = build_audit(audit_log, engine)
        toolset = _load_mcp(mcp, workspace) if mcp is not None else None
        executor = build_executor(
            sandbox,
            allow_unsandboxed=allow_unsandboxed,
            pool_size=pool_size,
            workspace=workspace,
        )
    except StackError:
        if audit is not None:
            audit.close()
        if state is not None and owns_state:
            state.close()
        raise
    approvals = None
    if state is not None:
        approvals = state.approvals if not isinstance(engine, AllowAllPolicy) else None
    elif approvals_db is not None and not isinstance(engine, AllowAllPolicy):
        from runtime.approvals.store import ApprovalStore

        approvals = ApprovalStore(approvals_db)
    if toolset is not None:
        from runtime.mcp.toolset import McpExecutor

        executor = McpExecutor(executor, toolset)
    return Stack(
        registry,
        executor,
        engine,
        audit,
        call_context(values),
        approvals,
        toolset,
        state=state,
        owns_state=owns_state,
    )


def _load_mcp(mcp: str | os.PathLike[str], workspace: str | os.PathLike[str] | None) -> McpToolset:
    """The MCP servers file and its pins, for `build_stack(mcp=...)`."""
    from runtime.mcp import McpUnavailable, require_sdk

    try:
        require_sdk()
    except McpUnavailable as exc:
        raise StackError(str(exc)) from None
    from runtime.mcp.config import McpConfigError
    from runtime.mcp.pins import LockError
    from runtime.mcp.toolset import McpToolset

    try:
        return McpToolset.from_file(
            mcp, workspace=str(workspace) if workspace is not None else None
        )
    except (McpConfigError, LockError) as exc:
        raise StackError(str(exc)) from None


def _open_state(store: str | StateStore | None) -> tuple[StateStore | None, bool]:
    if store is None:
        return None, False
    if not isinstance(store, str):
        return store, False
    from runtime.state_store import open_state_store

    try:
        return open_state_store(store), True
    except ValueError as exc:
        raise StackError(str(exc)) from None
