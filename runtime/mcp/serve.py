"""Serve governed tools over MCP: every call passes the gate, policy, sandbox and audit.

`GovernedMcpServer` puts each `tools/call` through `Stack.pipeline()`, the
same path `agentrt call` takes. A call that ends in anything but `ok` is an
MCP tool error (`isError: true`) whose text says why: the tool did not run
when the gate, the policy or a pending approval stopped it. A call that waits
for a human is kept in the approvals store, and the error names its id.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from typing import Any, Protocol

import mcp_types as types
from mcp.server.lowlevel import Server

from runtime.approvals import ApprovalStore
from runtime.calls import CallContext, CallStatus, ToolCallRequest
from runtime.pipeline import CallOutcome, ToolCallPipeline
from runtime.tools import ToolRegistry

__all__ = ["GovernedMcpServer", "serve_stdio"]

SERVER_NAME = "agentrt"


class Stack(Protocol):
    """What serving needs of `runtime.stack.Stack` (which depends on this package
    for consumed MCP tools, so it is named structurally here)."""

    registry: ToolRegistry
    context: CallContext
    approvals: ApprovalStore | None

    def pipeline(self, **options: Any) -> ToolCallPipeline: ...


class GovernedMcpServer:
    """An MCP server over a `Stack`: the stack's tools, its policy, sandbox and audit log.

    Args:
        stack: The stages every call goes through; its `context` (tenant,
            agent) is the caller's identity for policy scopes and audit.
        name: The server name announced to clients.
    """

    def __init__(self, stack: Stack, *, name: str = SERVER_NAME) -> None:
        self.stack = stack
        self.name = name
        self._pipeline = stack.pipeline()

    def definitions(self) -> list[types.Tool]:
        """The tools as MCP publishes them: name, description, input schema."""
        return [
            types.Tool(name=item.name, description=item.description, input_schema=item.parameters)
            for item in self.stack.registry
        ]

    async def call(
        self, name: str, arguments: dict[str, Any] | None, context: CallContext | None = None
    ) -> types.CallToolResult:
        """Run one `tools/call` through the pipeline and turn its outcome into an MCP result."""
        request = ToolCallRequest(
            id=f"mcp-{secrets.token_hex(8)}",
            name=name,
            # the SDK parsed the JSON already; the pipeline's strict parser sees it again,
            # so NaN/Infinity and oversized arguments are refused as for any caller
            arguments=json.dumps(arguments if arguments is not None else {}),
        )
        context = dataclasses.replace(context or self.stack.context, run_id=request.id)
        outcome = await self._pipeline.process(request, context)
        if outcome.status is CallStatus.PENDING_APPROVAL and self.stack.approvals is not None:
            from runtime.approvals.resume import pause

            ids = await pause(self.stack.approvals, [outcome], context, run_id=request.id)
            outcome = dataclasses.replace(outcome, approval_id=ids[request.id])
        return to_mcp_result(outcome)

    def server(self) -> Server[Any]:
        """A low-level SDK `Server` whose handlers are this object's methods."""

        async def list_tools(
            ctx: Any, params: types.PaginatedRequestParams | None
        ) -> types.ListToolsResult:
            return types.ListToolsResult(tools=self.definitions())

        async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
            return await self.call(params.name, params.arguments)

        return Server(self.name, on_list_tools=list_tools, on_call_tool=call_tool)


def to_mcp_result(outcome: CallOutcome) -> types.CallToolResult:
    """An `ok` outcome as its JSON result; anything else as a tool error saying why."""
    body = outcome.to_dict()
    if outcome.status is CallStatus.OK:
        text = json.dumps(outcome.result, ensure_ascii=False, default=str)
        structured = outcome.result if isinstance(outcome.result, dict) else None
        return types.CallToolResult(
            content=[types.TextContent(text=text)], structured_content=structured
        )
    message = outcome.error.message if outcome.error is not None else outcome.status.value
    text = f"{outcome.status.value}: {message}"
    if outcome.approval_id is not None:
        text += (
            f" (approval id {outcome.approval_id}: after `agentrt approvals approve "
            f"{outcome.approval_id}`, `agentrt call --resume {outcome.approval_id}` runs it once)"
        )
    if outcome.status.was_rejected:
        text += "; the tool did not run"
    return types.CallToolResult(
        content=[types.TextContent(text=text)], structured_content=body, is_error=True
    )


async def serve_stdio(stack: Stack, *, name: str = SERVER_NAME) -> None:
    """Serve `stack`'s tools on this process's stdin/stdout until the client disconnects."""
    from mcp.server.stdio import stdio_server

    server = GovernedMcpServer(stack, name=name).server()
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
