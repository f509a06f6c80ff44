"""`agentrt serve`'s HTTP contract (FastAPI): runs, approvals, audit, metrics, health.

Every route but `/healthz` needs `Authorization: Bearer TOKEN` (the approvals
page also takes the token from its HttpOnly cookie); the token's tenant is
the only tenant a request sees: another tenant's run or approval is a 404,
exactly like one that does not exist. Errors are JSON
`{"error": {"type": ..., "message": ...}}`: 400 bad JSON, 401 no or bad
token, 404, 409 not pending, 413 a body over the limit, 422 a body or
edited arguments that do not validate, 503 the store (PostgreSQL) or the
model unavailable. A bad request never becomes a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.service.app_state import ServiceApp, audit_view
from runtime.service.page import add_page_routes
from runtime.service.runner import RunService, ServiceError
from runtime.service.tokens import Identity, Tokens
from runtime.storage import StoreUnavailable

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app"]

DEFAULT_MAX_BODY_BYTES = 1 << 20  # 1 MiB
SESSION_COOKIE = "agentrt_session"


class BodyTooLarge(ServiceError):
    status_code, type = 413, "body_too_large"


class RunRequest(BaseModel):
    """`POST /v1/runs`."""

    model_config = ConfigDict(extra="forbid")

    input: str = Field(min_length=1, max_length=100_000, description="the user's request")
    agent: str | None = Field(default=None, max_length=200, description="agent name (policy scope)")
    context: dict[str, Any] = Field(default_factory=dict, description="values policies read")
    wait: bool = Field(default=True, description="false: answer 202 at once; poll or stream")


class ApproveRequest(BaseModel):
    """`POST /v1/approvals/{id}/approve`."""

    model_config = ConfigDict(extra="forbid")

    arguments: dict[str, Any] | None = Field(
        default=None, description="edited arguments: validated and decided again"
    )
    note: str | None = Field(default=None, max_length=2000)
    wait: bool = Field(default=False, description="answer once the resumed run stops")


class DenyRequest(BaseModel):
    """`POST /v1/approvals/{id}/deny`."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)
    wait: bool = False


def _state(request: Request) -> ServiceApp:
    found: ServiceApp = request.app.state.agentrt
    return found


def bearer_identity(request: Request) -> Identity:
    """The caller, from `Authorization: Bearer TOKEN` (401 otherwise)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    presented = token.strip() if scheme.lower() == "bearer" else ""
    return _state(request).identity_of(presented)


Caller = Annotated[Identity, Depends(bearer_identity)]


class _BodyLimit:
    """Refuse request bodies over `max_bytes` (413), by header or while reading."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await _send_json(send, BodyTooLarge(self._message()))
                    return
        received = 0
        refused = False

        async def limited() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Answer now, and tell the app the client left: whatever it
                    # answers to that is dropped by `guarded`.
                    refused = True
                    await _send_json(send, BodyTooLarge(self._message()))
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, limited, guarded)

    def _message(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes"


async def _send_json(send: Send, error: ServiceError) -> None:
    body = json.dumps(error.to_dict()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _error_response(error: ServiceError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
    return JSONResponse(error.to_dict(), status_code=error.status_code, headers=headers)


def create_app(
    service: RunService,
    tokens: Tokens,
    *,
    audit_log: Path | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
    resume_interval_s: float | None = 5.0,
) -> FastAPI:
    """The ASGI application (`uvicorn` serves it; tests may call it in-process).

    `resume_interval_s`: how often the replica looks for paused runs whose
    approvals were decided outside it (None: never).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sweeper = (
            asyncio.ensure_future(service.sweep_forever(resume_interval_s))
            if resume_interval_s
            else None
        )
        yield
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        await service.aclose()
        if on_shutdown is not None:
            await on_shutdown()

    app = FastAPI(
        title="agent-runtime",
        description="Tool-using agent runs behind a strict gate, with human approvals.",
        version="1",
        lifespan=lifespan,
    )
    app.state.agentrt = ServiceApp(
        service, tokens, audit_log=audit_log, max_body_bytes=max_body_bytes
    )
    app.add_middleware(_BodyLimit, max_bytes=max_body_bytes)

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        service.metrics.request(request.method, response.status_code)
        return response

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        return _error_response(exc)

    @app.exception_handler(StoreUnavailable)
    async def store_down(request: Request, exc: StoreUnavailable) -> Response:
        return JSONResponse(
            {"error": {"type": "store_unavailable", "message": str(exc)}},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        bad_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
        if bad_json is not None:
            detail = (bad_json.get("ctx") or {}).get("error", "")
            return JSONResponse(
                {
                    "error": {
                        "type": "invalid_json",
                        "message": f"the request body is not valid JSON ({detail})".replace(
                            " ()", ""
                        ),
                    }
                },
                status_code=400,
            )
        details = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg"), "type": e.get("type")}
            for e in errors
        ]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(first["loc"][1:] if first["loc"][:1] == ["body"] else first["loc"])
        return JSONResponse(
            {
                "error": {
                    "type": "invalid_request",
                    "message": f"{where or 'request'}: {first['msg']}",
                    "details": details,
                }
            },
            status_code=422,
        )

    _add_routes(app)
    add_page_routes(app)
    return app


def _add_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["service"])
    async def healthz(request: Request) -> dict[str, Any]:
        """Liveness: 200 while the process serves (no authentication)."""
        return {"ok": True, "replica": _state(request).service.replica}

    @app.post("/v1/runs", tags=["runs"], status_code=200)
    async def create_run(
        body: RunRequest, caller: Caller, request: Request, response: Response
    ) -> dict[str, Any]:
        """Start a run: its result, as `agentrt run --json` prints it (or 202 with `wait: false`)."""
        out = await _state(request).service.start_run(
            caller, body.input, agent=body.agent, context=body.context, wait=body.wait
        )
        if not body.wait:
            response.status_code = 202
        return out

    @app.get("/v1/runs/{run_id}", tags=["runs"])
    async def get_run(run_id: str, caller: Caller, request: Request) -> dict[str, Any]:
        """A run of the caller's tenant (its result once it stopped)."""
        run = await _state(request).service.get_run(caller, run_id)
        return run.to_dict()

    @app.get("/v1/runs/{run_id}/events", tags=["runs"])
    async def run_events(
        run_id: str,
        caller: Caller,
        request: Request,
        after: Annotated[int, Query(ge=0)] = 0,
    ) -> StreamingResponse:
        """Server-sent events: one per call stage, then `run.finished`.

        Ends when the run stops or waits for a human; a paused run whose
        approvals were all decided keeps the stream open until it resumes.
        """
        state = _state(request)
        await state.service.get_run(caller, run_id)  # 404 for another tenant's run
        last = request.headers.get("last-event-id", "")
        start = int(last) if last.isdigit() else after
        return StreamingResponse(
            _event_stream(state.service, caller, run_id, start),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/v1/approvals", tags=["approvals"])
    async def list_approvals(
        caller: Caller, request: Request, status: str | None = "pending"
    ) -> dict[str, Any]:
        """The caller's tenant's approvals (pending unless `status` says otherwise)."""
        state = _state(request)
        records = await state.service.list_approvals(caller, status or None)
        now = _now()
        return {"approvals": [state.approval_view(r, now) for r in records]}

    @app.get("/v1/approvals/{approval_id}", tags=["approvals"])
    async def get_approval(approval_id: str, caller: Caller, request: Request) -> dict[str, Any]:
        """One approval of the caller's tenant."""
        state = _state(request)
        record = await state.service.get_approval(caller, approval_id)
        return state.approval_view(record, _now())

    @app.post("/v1/approvals/{approval_id}/approve", tags=["approvals"])
    async def approve(
        approval_id: str, caller: Caller, request: Request, body: ApproveRequest | None = None
    ) -> dict[str, Any]:
        """Approve (optionally with edited arguments, checked again); the run resumes."""
        body = body or ApproveRequest()
        state = _state(request)
        out = await state.service.approve(
            caller, approval_id, arguments=body.arguments, note=body.note, wait=body.wait
        )
        out["approval"] = state.approval_view(
            await state.service.get_approval(caller, approval_id), _now()
        )
        return out

    @app.post("/v1/approvals/{approval_id}/deny", tags=["approvals"])
    async def deny(
        approval_id: str, caller: Caller, request: Request, body: DenyRequest | None = None
    ) -> dict[str, Any]:
        """Deny: the call never runs, the model is told, the run resumes."""
        body = body or DenyRequest()
        state = _state(request)
        out = await state.service.deny(caller, approval_id, reason=body.reason, wait=body.wait)
        out["approval"] = state.approval_view(
            await state.service.get_approval(caller, approval_id), _now()
        )
        return out

    @app.get("/v1/audit", tags=["audit"])
    async def audit(
        caller: Caller,
        request: Request,
        tool: str | None = None,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """This replica's audit records of the caller's tenant, newest last, and whether the chain verifies."""
        state = _state(request)
        return await asyncio.to_thread(
            audit_view, state.audit_log, caller.tenant, tool, status, since, until, limit
        )

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    async def metrics(caller: Caller, request: Request) -> PlainTextResponse:
        """Prometheus text format: runs, calls by status, latency histograms (this replica)."""
        return PlainTextResponse(
            _state(request).service.metrics.render(),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )


async def _event_stream(
    service: RunService, caller: Identity, run_id: str, after: int
) -> AsyncIterator[bytes]:
    seen = after
    while True:
        # Read the status first: events written before it stopped are then all in the table.
        run = await service.get_run(caller, run_id)
        for seq, event in await asyncio.to_thread(service.runs.events, run_id, seen):
            seen = seq
            yield _sse(seq, event)
        if service.is_final(run.status) and not await _resume_due(service, run.id, run.status):
            return
        await service.changed(0.5)  # a local write wakes it; another replica's, the timeout


async def _resume_due(service: RunService, run_id: str, status: str) -> bool:
    """A paused run whose approvals are all decided is about to resume: keep streaming."""
    if status != "pending_approval":
        return False
    return await asyncio.to_thread(service.approvals.run_is_resolved, run_id)


def _sse(seq: int, event: dict[str, Any]) -> bytes:
    return (
        f"id: {seq}\nevent: {event.get('stage', 'message')}\ndata: {json.dumps(event)}\n\n"
    ).encode()


def _now() -> float:
    return time.time()
