"""MCP servers' tools in the registry, as `SERVER.TOOL`, behind the same gate as local tools.

`McpToolset.register` adds each server's pinned tools to the registry as
`McpTool`s from the lock file, without starting anything: their `parameters`
are the input schema the server published when it was pinned, so the
argument gate validates calls against it like any local tool's. A server
starts at the first call to one of its tools, and each start lists what it
publishes: a call is sent only when its tool's definition is still exactly
the pinned one. A tool whose definition changed, or that vanished, ends the
call `unknown_tool` naming the change, and is refused from then on, as are
tools the server added (never pinned). A pinned schema that is not valid JSON
Schema refuses its tool at once. A server without pins is not started: none
of its tools are offered until `agentrt mcp pin` reviewed them.

`McpExecutor` wraps the stack's executor: a call to an `McpTool` is forwarded
to its server's connection, anything else goes to the wrapped executor. So
policy, approvals and audit see MCP calls exactly as they see local ones,
and each record carries the server id and the pin's digest.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
import time
from collections.abc import Mapping
from typing import Any

import jsonschema
import mcp_types as types
import pydantic

from runtime.audit.events import mcp_tool_fields
from runtime.calls import CallContext, CallStatus, ErrorInfo, ExecutionResult
from runtime.mcp.config import McpConfig, StdioServer, load_mcp_config, lock_path
from runtime.mcp.connection import McpConnection, McpServerError
from runtime.mcp.launch import LaunchError, server_mounts
from runtime.mcp.pins import Definition, Lock, PinCheck, check_pins
from runtime.sandbox.executor import ToolExecutor
from runtime.tools import Tool, ToolRegistry

__all__ = ["McpExecutor", "McpTool", "McpToolset", "ServerReport", "live_reports", "pinned_lock"]


class _AnyArguments(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")


def _not_local(**_: Any) -> Any:
    raise RuntimeError("an MCP tool runs on its server; call it through McpExecutor")


@dataclasses.dataclass(eq=False)
class McpTool(Tool):
    """A tool an MCP server publishes, pinned, offered as `SERVER.TOOL`.

    Attributes:
        server_id: The server's id in the MCP servers file.
        remote_name: The tool's name on its server.
        pin_sha256: Digest of the pinned definition (name, description, schema).
    """

    server_id: str = ""
    remote_name: str = ""
    pin_sha256: str = ""

    def audit_fields(self) -> dict[str, Any]:
        return mcp_tool_fields(self.server_id, self.pin_sha256)

    @classmethod
    def from_definition(
        cls, server_id: str, definition: Definition, *, timeout_s: float
    ) -> McpTool:
        return cls(
            name=f"{server_id}.{definition.name}",
            description=definition.description or definition.name,
            fn=_not_local,
            parameters=definition.input_schema,
            args_model=_AnyArguments,
            timeout_s=timeout_s,
            requires_sandbox=True,
            module_name=f"mcp:{server_id}",
            server_id=server_id,
            remote_name=definition.name,
            pin_sha256=definition.sha256,
        )


def schema_problem(schema: Any) -> str | None:
    """Why an input schema cannot gate calls, or None when it can."""
    if not isinstance(schema, dict):
        return "its input schema is not a JSON object"
    try:
        cls = jsonschema.validators.validator_for(schema, jsonschema.Draft202012Validator)
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return f"its input schema is not valid JSON Schema ({exc.message})"
    if schema.get("type") != "object":
        return 'its input schema does not describe an object (`"type": "object"`)'
    return None


@dataclasses.dataclass
class ServerReport:
    """What registering or listing one server found: its tools' standing, or why not.

    Attributes:
        server_id: The server's id.
        checks: Each tool's standing against the pins.
        error: Why the server's tools are not offered at all.
        listed: The checks come from the server itself; False when they come
            from the lock (registering does not start servers).
    """

    server_id: str
    checks: list[PinCheck] = dataclasses.field(default_factory=list)
    error: str | None = None
    listed: bool = True

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "server": self.server_id,
            "tools": [
                {"name": c.name, "state": c.state, **({"reason": c.reason} if c.reason else {})}
                for c in self.checks
            ],
        }
        if self.error is not None:
            out["error"] = self.error
        if not self.listed:
            out["listed"] = False
        return out


class McpToolset:
    """The servers of one MCP servers file, for one session (a `Stack`).

    Args:
        config: The loaded servers file.
        lock: The pins (`Lock.read(lock_path(file))`).
        workspace: The host directory servers with `workspace: true` see at /workspace.
    """

    def __init__(self, config: McpConfig, lock: Lock, *, workspace: str | None = None) -> None:
        self.config = config
        self.lock = lock
        self.workspace = workspace
        self._connections: dict[tuple[str, bool], McpConnection] = {}
        self._registry: ToolRegistry | None = None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, workspace: str | None = None) -> McpToolset:
        """Load the servers file and its lock (`McpConfigError`, `LockError` when they cannot)."""
        return cls(load_mcp_config(path), Lock.read(lock_path(path)), workspace=workspace)

    def connection(self, server_id: str, *, network: bool = False) -> McpConnection:
        """The session's connection to a server (created, not started, on first use).

        Raises:
            LaunchError: The server's mounts are refused.
        """
        config = self.config.servers[server_id]
        network = network and isinstance(config, StdioServer) and config.network
        key = (server_id, network)
        found = self._connections.get(key)
        if found is None:
            mounts = (
                server_mounts(config, self.workspace) if isinstance(config, StdioServer) else ()
            )
            found = McpConnection(
                server_id,
                config,
                mounts=mounts,
                network=network,
                on_listed=functools.partial(self._listed, server_id),
            )
            self._connections[key] = found
        return found

    def _listed(self, server_id: str, live: Mapping[str, Definition]) -> None:
        """A server started: refuse, from now on, each of its tools that is not as pinned."""
        if self._registry is None:
            return
        for check in check_pins(server_id, live, self.lock.servers.get(server_id)):
            if not check.offered:
                self._registry.refuse(f"{server_id}.{check.name}", check.reason)

    async def definitions(self, server_id: str) -> dict[str, Definition]:
        """What a server publishes now (starts it if needed)."""
        return await self.connection(server_id).list_definitions()

    async def register(self, registry: ToolRegistry) -> list[ServerReport]:
        """Add every server's pinned tools to `registry` from the lock; start nothing.

        The servers start at their first call, which checks the pins against
        what they publish then.
        """
        self._registry = registry
        return [self._register(server_id, registry) for server_id in self.config.servers]

    def _register(self, server_id: str, registry: ToolRegistry) -> ServerReport:
        config = self.config.servers[server_id]
        pinned = self.lock.servers.get(server_id) or {}
        if not pinned:
            return ServerReport(
                server_id,
                error=(
                    f"MCP server {server_id!r} has no pinned tools, so it is not started: review "
                    f"its tools with `agentrt mcp diff`, then pin them with `agentrt mcp pin`"
                ),
                listed=False,
            )
        try:
            self.connection(server_id)  # its mounts are checked now, not at the first call
        except LaunchError as exc:
            for name in pinned:
                registry.refuse(f"{server_id}.{name}", str(exc))
            return ServerReport(server_id, error=str(exc), listed=False)
        checks = [PinCheck(name, "pinned", "", pinned[name]) for name in sorted(pinned)]
        for check in checks:
            qualified = f"{server_id}.{check.name}"
            assert check.definition is not None
            problem = schema_problem(check.definition.input_schema)
            if problem is not None:
                registry.refuse(qualified, f"{qualified}: {problem}")
                continue
            registry.add(
                McpTool.from_definition(
                    server_id, check.definition, timeout_s=config.call_timeout_s
                )
            )
        return ServerReport(server_id, checks, listed=False)

    async def check(self, server_id: str) -> ServerReport:
        """A server's published tools against its pins, or why it could not be listed."""
        try:
            live = await self.definitions(server_id)
        except (McpServerError, LaunchError) as exc:
            return ServerReport(server_id, error=str(exc))
        return ServerReport(
            server_id, check_pins(server_id, live, self.lock.servers.get(server_id))
        )

    async def call(
        self, tool: McpTool, arguments: Mapping[str, Any], context: CallContext
    ) -> ExecutionResult:
        """Forward one gated, allowed call to the tool's server; never raises for its failure."""
        started = time.perf_counter()
        facts: dict[str, Any] = {"mode": "mcp", "mcp_server": tool.server_id}
        pinned = self.lock.servers.get(tool.server_id, {}).get(tool.remote_name)
        try:
            connection = self.connection(tool.server_id, network="network" in context.grants)
            facts["mode"] = connection.mode
            result = await connection.call(tool.remote_name, dict(arguments), pinned=pinned)
        except (McpServerError, LaunchError) as exc:
            kind = getattr(exc, "kind", "launch")
            status = _STATUS_OF_KIND.get(kind, CallStatus.SANDBOX_ERROR)
            kind = "unknown_tool" if status is CallStatus.UNKNOWN_TOOL else f"mcp_{kind}"
            return ExecutionResult(
                status=status,
                error=ErrorInfo(type=kind, message=str(exc)),
                duration_ms=(time.perf_counter() - started) * 1000,
                sandbox=facts,
            )
        if connection.container_id is not None:
            facts["container_id"] = connection.container_id
        if isinstance(connection.config, StdioServer):
            facts["image"] = connection.config.image
        return _execution_result(result, (time.perf_counter() - started) * 1000, facts)

    async def aclose(self) -> None:
        """Stop every server of this session and remove their containers."""
        connections, self._connections = list(self._connections.values()), {}
        await asyncio.gather(*(c.aclose() for c in connections), return_exceptions=True)


_STATUS_OF_KIND = {
    "call_timeout": CallStatus.TIMEOUT,
    # the server no longer publishes what the call was gated with: nothing was sent
    "pin_mismatch": CallStatus.UNKNOWN_TOOL,
}


def _execution_result(
    result: types.CallToolResult, duration_ms: float, facts: dict[str, Any]
) -> ExecutionResult:
    texts = [block.text for block in result.content if isinstance(block, types.TextContent)]
    if result.is_error:
        message = " ".join(texts).strip() or "the MCP tool reported an error"
        return ExecutionResult(
            status=CallStatus.TOOL_ERROR,
            error=ErrorInfo(type="mcp_tool_error", message=message[:4000]),
            duration_ms=duration_ms,
            sandbox=facts,
        )
    value: Any
    if result.structured_content is not None:
        value = result.structured_content
    elif len(texts) == len(result.content):
        value = "\n".join(texts)
    else:
        value = [block.model_dump(mode="json", by_alias=True) for block in result.content]
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        value = str(value)
    return ExecutionResult(
        status=CallStatus.OK, result=value, duration_ms=duration_ms, sandbox=facts
    )


class McpExecutor:
    """Routes calls to `McpTool`s to their servers; every other call to `inner`.

    Args:
        inner: The stack's executor for local tools.
        toolset: The session's MCP servers.
    """

    def __init__(self, inner: ToolExecutor, toolset: McpToolset) -> None:
        self.inner = inner
        self.toolset = toolset
        self.name = inner.name
        prewarm = getattr(inner, "prewarm", None)
        if prewarm is not None:  # the warm pool of local tools keeps working
            self.prewarm = prewarm
        # a call may first wait for the back-off, then for its server to start and list its tools
        starts = [s.start_timeout_s + s.call_timeout_s for s in toolset.config.servers.values()]
        self.sandbox_wait_s = max(
            [float(getattr(inner, "sandbox_wait_s", 0.0) or 0.0), *(s + 10.0 for s in starts)]
        )

    async def execute(
        self, tool: Tool, arguments: Mapping[str, Any], context: CallContext
    ) -> ExecutionResult:
        if isinstance(tool, McpTool):
            return await self.toolset.call(tool, arguments, context)
        return await self.inner.execute(tool, arguments, context)

    async def end_run(self, run_id: str) -> None:
        await self.inner.end_run(run_id)

    async def aclose(self) -> None:
        try:
            await self.toolset.aclose()
        finally:
            await self.inner.aclose()


async def live_reports(toolset: McpToolset) -> list[ServerReport]:
    """Each server's tools checked against the pins, without registering anything."""
    return list(await asyncio.gather(*(toolset.check(sid) for sid in toolset.config.servers)))


def pinned_lock(toolset: McpToolset, reports: list[ServerReport]) -> Lock:
    """The lock after pinning what each server publishes now.

    A server that could not be listed keeps its previous pins.
    """
    servers: dict[str, dict[str, Definition]] = {}
    for report in reports:
        if report.error is not None:
            if report.server_id in toolset.lock.servers:
                servers[report.server_id] = dict(toolset.lock.servers[report.server_id])
            continue
        servers[report.server_id] = {
            c.name: c.definition for c in report.checks if c.definition is not None
        }
    return Lock(servers)
