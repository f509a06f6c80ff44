"""Serve governed tools over MCP: every call passes the gate, policy, sandbox and audit.

`GovernedMcpServer` puts each `tools/call` through `Stack.pipeline()`, the
same path `agentrt call` takes. A call that ends in anything but `ok` is an
MCP tool error (`isError: true`) whose text says why: the tool did not run
when the gate, the policy or a pending approval stopped it. A call that waits
for a human is kept in the approvals store, and the error names its id.

Two transports: stdio (`serve_stdio`, one client, the identity is the
stack's context) and streamable HTTP (`serve_http`), where every request
must carry `Authorization: Bearer TOKEN` and the token's entry in the tokens
file decides the tenant (and agent) each call is made for.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import secrets
import signal
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import mcp_types as types
import uvicorn
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.lowlevel import Server

from runtime.auth import BearerAuth, Principal, TokenTable, principal_of
from runtime.calls import CallContext, CallStatus, ErrorInfo, ToolCallRequest
from runtime.pipeline import CallOutcome

if TYPE_CHECKING:
    from runtime.approvals.store import ApprovalStore
    from runtime.pipeline import ToolCallPipeline
    from runtime.tools import ToolRegistry

__all__ = ["MCP_PATH", "GovernedMcpServer", "ServedStack", "serve_http", "serve_stdio"]

SERVER_NAME = "agentrt"
#: Where `serve_http` answers MCP requests.
MCP_PATH = "/mcp"


class ServedStack(Protocol):
    """What serving needs of a `runtime.stack.Stack` (named structurally: the stack imports MCP)."""

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
        require_principal: Refuse a call whose request carries no `Principal`
            (HTTP serving: the identity comes from the bearer token, never
            from the stack's own context).
    """

    def __init__(
        self, stack: ServedStack, *, name: str = SERVER_NAME, require_principal: bool = False
    ) -> None:
        self.stack = stack
        self.name = name
        self.require_principal = require_principal
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

    def context_for(self, principal: Principal | None) -> CallContext | None:
        """The identity a call is made with: the token's tenant and agent, else the stack's.

        None when a principal is required and there is none.
        """
        if principal is None:
            return None if self.require_principal else self.stack.context
        return dataclasses.replace(
            self.stack.context,
            tenant=principal.tenant,
            agent=principal.agent or self.stack.context.agent,
        )

    def server(self) -> Server[Any]:
        """A low-level SDK `Server` whose handlers are this object's methods."""

        async def list_tools(
            ctx: Any, params: types.PaginatedRequestParams | None
        ) -> types.ListToolsResult:
            return types.ListToolsResult(tools=self.definitions())

        async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
            # over HTTP the SDK hands over the request `BearerAuth` let through
            request = getattr(ctx, "request", None)
            context = self.context_for(principal_of(getattr(request, "scope", None)))
            if context is None:
                return _unauthenticated()
            return await self.call(params.name, params.arguments, context)

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


def _unauthenticated() -> types.CallToolResult:
    error = ErrorInfo(type="unauthenticated", message="the request carried no bearer token")
    return types.CallToolResult(
        content=[types.TextContent(text=f"denied: {error.message}; the tool did not run")],
        structured_content={"status": "denied", "error": error.to_dict()},
        is_error=True,
    )


async def serve_stdio(stack: ServedStack, *, name: str = SERVER_NAME) -> None:
    """Serve `stack`'s tools on this process's stdin/stdout until the client disconnects."""
    from mcp.server.stdio import stdio_server

    server = GovernedMcpServer(stack, name=name).server()
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def _jsonrpc_refusal(message: str) -> bytes:
    """A 401 body MCP clients surface as an error naming the cause."""
    return json.dumps(
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": message}}
    ).encode()


class _SdkUser:
    """Present the principal to the SDK as its authenticated user.

    The SDK binds each MCP session to the user that opened it, so a session id
    seen with another token's request answers 404, as if it did not exist.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        principal = principal_of(scope)
        if principal is not None:
            scope = dict(scope)
            scope["user"] = AuthenticatedUser(
                AccessToken(token=principal.entry, client_id=principal.entry, scopes=[])
            )
        await self.app(scope, receive, send)


class _UvicornServer(uvicorn.Server):
    """uvicorn's server, stopping on SIGINT/SIGTERM without raising the signal again.

    uvicorn re-raises a caught signal once it has shut down, which would end
    the process before the caller closes the stack (containers, audit log).
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        stops = (signal.SIGINT, signal.SIGTERM)
        for number in stops:
            loop.add_signal_handler(number, self._stop)
        try:
            yield
        finally:
            for number in stops:
                loop.remove_signal_handler(number)

    def _stop(self) -> None:
        self.should_exit = True


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=128)


async def serve_http(
    stack: ServedStack,
    tokens: TokenTable,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    name: str = SERVER_NAME,
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Serve `stack`'s tools over streamable HTTP at `MCP_PATH` until SIGINT or SIGTERM.

    Every request needs `Authorization: Bearer TOKEN` with a token of
    `tokens` (else 401); each call is made for that token's tenant and agent.

    Args:
        stack: The stages every call goes through.
        tokens: The accepted tokens (`runtime.auth.load_tokens`).
        host: Address to listen on (loopback by default).
        port: Port to listen on; 0 picks a free one.
        name: The server name announced to clients.
        on_listening: Called with the endpoint URL once the socket listens
            (requests sent from then on are served).

    Raises:
        OSError: The address cannot be bound.
    """
    governed = GovernedMcpServer(stack, name=name, require_principal=True)
    app = governed.server().streamable_http_app(host=host, streamable_http_path=MCP_PATH)
    guarded = BearerAuth(_SdkUser(app), tokens, body=_jsonrpc_refusal)
    listener = _listen(host, port)
    bound = listener.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    server = _UvicornServer(uvicorn.Config(guarded, log_level="warning", access_log=False))
    if on_listening is not None:
        on_listening(f"http://{shown}:{bound}{MCP_PATH}")
    try:
        await server.serve(sockets=[listener])
    finally:
        listener.close()
