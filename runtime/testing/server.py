"""A scripted OpenAI-compatible server: real HTTP on 127.0.0.1, vLLM's wire format.

Tests (yours and ours) drive the real `openai` client path against it: tool
call ids `chatcmpl-tool-<hex>`, `finish_reason`, server-sent events with the
call's id and name once and then argument fragments by index, `data: [DONE]`,
and vLLM's error bodies. It runs its own event loop in a daemon thread, so it
works from sync code and does not add lag to the loop under test.

Example:
    with ScriptedServer([ScriptedReply.call("add", {"a": 1, "b": 2}),
                         ScriptedReply.message("3")]) as server:
        client = OpenAICompatibleClient(server.base_url, server.model)

With `enable_lora=True` it is a vLLM server started with `--enable-lora` (and
`VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`): it answers the two adapter
endpoints, lists loaded adapters in `/v1/models`, and refuses a completion
for a model name that is neither the base nor a loaded adapter with vLLM's
404 (see `runtime.testing.lora`). `handlers` gives a model name, or an
adapter's path, its own replies, so an adapter answers differently from the
base, and the same files answer the same under any name they are loaded as.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from runtime.testing.lora import AdminReply, ScriptedAdapters

__all__ = ["ScriptedReply", "ScriptedServer"]


@dataclasses.dataclass(frozen=True)
class ScriptedReply:
    """One reply of the script.

    Attributes:
        text: Assistant content (may hold `<tool_call>` blocks, as a server
            without a tool parser would send).
        tool_calls: `(name, arguments)` pairs; arguments as a dict or a raw
            (possibly malformed) string, sent as the server's `tool_calls`.
        finish_reason: Overrides the natural one (`tool_calls` or `stop`).
        status: HTTP status; with `error`, an error body is sent.
        error: The error message for a non-200 reply.
        headers: Extra response headers (e.g. `retry-after`).
        disconnect: Close the connection without answering.
        raw_body: Send this body verbatim: a mapping as JSON (e.g. a captured
            real reply), or text/bytes exactly as given (an HTML error page, JSON
            cut off mid-object).
        raw_sse: Send these `data: ...` lines verbatim as an event stream, then
            close the connection (leave out `data: [DONE]` to cut a stream).
        content_type: The content type of a text `raw_body`.
        delay_s: Wait this long before answering (a server that hangs).
        keepalive_s: For a stream: after the response head, send only `: keep-alive`
            comments, one every `keepalive_s`, until the client goes away.
    """

    text: str | None = None
    tool_calls: tuple[tuple[str, Mapping[str, Any] | str], ...] = ()
    finish_reason: str | None = None
    status: int = 200
    error: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    disconnect: bool = False
    raw_body: Mapping[str, Any] | str | bytes | None = None
    raw_sse: tuple[str, ...] | None = None
    content_type: str = "application/json"
    delay_s: float = 0.0
    keepalive_s: float | None = None

    @classmethod
    def captured(
        cls,
        *,
        status: int = 200,
        body: Mapping[str, Any] | str | bytes | None = None,
        sse: Iterable[str] = (),
        content_type: str = "application/json",
    ) -> ScriptedReply:
        """Replay a real (or deliberately broken) reply byte for byte.

        `body` is a JSON mapping or raw text (e.g. an HTML page, with
        `content_type="text/html"`); `sse` the `data: ...` lines of a stream.
        """
        lines = tuple(sse)
        return cls(status=status, raw_body=body, raw_sse=lines or None, content_type=content_type)

    @classmethod
    def hang(cls, seconds: float = 3600.0) -> ScriptedReply:
        """Answer nothing for `seconds` (a server that accepted the request and stalls)."""
        return cls(delay_s=seconds, disconnect=True)

    @classmethod
    def keepalives(cls, every_s: float = 0.05) -> ScriptedReply:
        """Start a stream and then send only keep-alive comments, forever."""
        return cls(keepalive_s=every_s)

    @classmethod
    def message(cls, text: str, *, finish_reason: str | None = None) -> ScriptedReply:
        return cls(text=text, finish_reason=finish_reason)

    @classmethod
    def call(cls, name: str, arguments: Mapping[str, Any] | str) -> ScriptedReply:
        return cls(tool_calls=((name, arguments),))

    @classmethod
    def calls(cls, *calls: tuple[str, Mapping[str, Any] | str]) -> ScriptedReply:
        return cls(tool_calls=tuple(calls))

    @classmethod
    def failure(
        cls, status: int, message: str, *, retry_after: float | None = None
    ) -> ScriptedReply:
        headers = (("retry-after", f"{retry_after:g}"),) if retry_after is not None else ()
        return cls(status=status, error=message, headers=headers)

    @classmethod
    def drop_connection(cls) -> ScriptedReply:
        return cls(disconnect=True)


Handler = Callable[[dict[str, Any]], ScriptedReply]

_ERROR_TYPES = {
    400: "BadRequestError",
    404: "NotFoundError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


class ScriptedServer:
    """Serves scripted replies in order, or whatever `handler(request)` returns.

    Args:
        replies: The script; a request after the last reply gets HTTP 500
            "script exhausted" so a test notices.
        handler: Alternative to `replies`: computes a reply from the request
            body (for many concurrent conversations).
        model: The model name it reports (the base model, with `enable_lora`).
        stream_chunk: Size of argument fragments in streamed replies.
        handlers: Replies by model name, or by the path an adapter was loaded
            from; a request for any other model gets `handler` or the script.
            Read at request time: a test may add entries while the server runs.
        enable_lora: Serve LoRA adapters as vLLM does (see the module docstring).
        lora_modules: Adapters loaded at start, name -> path (`--lora-modules`).
        runtime_lora_updating: Whether the load/unload endpoints exist.
        max_lora_rank: `--max-lora-rank`; a load above it fails as in vLLM.
        model_root: The base's path as `/v1/models` reports it.

    Attributes:
        requests: Every chat-completions request body received, in order.
        adapters: The adapter table (`enable_lora`), else None: `loaded`,
            `events` (each load/unload) and `unknown_model_requests`.
    """

    def __init__(
        self,
        replies: Iterable[ScriptedReply] = (),
        *,
        handler: Handler | None = None,
        model: str = "scripted",
        stream_chunk: int = 7,
        handlers: Mapping[str, Handler] | None = None,
        enable_lora: bool = False,
        lora_modules: Mapping[str, str | Path] | None = None,
        runtime_lora_updating: bool = True,
        max_lora_rank: int = 16,
        model_root: str | None = None,
    ) -> None:
        self._script = list(replies)
        self._handler = handler
        self._handlers: Mapping[str, Handler] = handlers if handlers is not None else {}
        self.adapters: ScriptedAdapters | None = None
        if enable_lora or lora_modules:
            self.adapters = ScriptedAdapters(
                model,
                root=model_root or f"/models/{model}",
                static=lora_modules,
                runtime_updating=runtime_lora_updating,
                max_lora_rank=max_lora_rank,
            )
        self.model = model
        self.stream_chunk = stream_chunk
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._closing: asyncio.Event | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def remaining(self) -> int:
        """Replies of the script not yet served."""
        with self._lock:
            return len(self._script)

    def start(self) -> ScriptedServer:
        self._thread = threading.Thread(
            target=self._serve, name="scripted-model-server", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("scripted server did not start")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(lambda: loop.create_task(self._shutdown()))
        thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> ScriptedServer:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def boot() -> None:
            self._closing = asyncio.Event()
            self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=512)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()

        # Boot inside run_forever: a stop() arriving between a run_until_complete
        # and run_forever would otherwise be lost and the thread would never end.
        boot_task = loop.create_task(boot())
        loop.run_forever()
        if boot_task.done() and not boot_task.cancelled() and boot_task.exception():
            raise boot_task.exception()  # type: ignore[misc]
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    async def _shutdown(self) -> None:
        assert self._loop is not None
        if self._closing is not None:
            self._closing.set()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        # End the connections still open (a client waiting on a hung reply)
        # before the loop stops, so none is left pending.
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._loop.stop()

    def _next_reply(self, body: dict[str, Any]) -> ScriptedReply:
        with self._lock:
            self.requests.append(body)
            own = self._handler_for(body.get("model"))
            if own is not None:
                return own(body)
            if self._handler is not None:
                return self._handler(body)
            if not self._script:
                return ScriptedReply.failure(500, "scripted server: script exhausted")
            return self._script.pop(0)

    def _handler_for(self, model: Any) -> Handler | None:
        """The replies of one model name, or of the adapter loaded under it."""
        if not isinstance(model, str):
            return None
        if model in self._handlers:
            return self._handlers[model]
        path = self.adapters.path_of(model) if self.adapters is not None else None
        if path is None:
            return None
        return self._handlers.get(path) or self._handlers.get(str(Path(path)))

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                method, path, body = request
                keep_open = await self._respond(method, path, body, writer)
                if not keep_open:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            # Only `stop()` cancels a connection: end quietly (Python 3.11's stream
            # callback logs a cancelled handler task as an error).
            return
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _respond(
        self, method: str, path: str, raw: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        if method == "GET" and path.rstrip("/").endswith("/models"):
            cards = (
                self.adapters.cards()
                if self.adapters is not None
                else [{"id": self.model, "object": "model", "owned_by": "scripted"}]
            )
            await _send_json(writer, 200, {"object": "list", "data": cards})
            return True
        admin = self.adapters.route(path, raw) if self.adapters and method == "POST" else None
        if admin is not None:
            await _send_admin(writer, admin)
            return True
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            await _send_json(writer, 404, _error_body(404, f"no route {method} {path}"))
            return True
        try:
            body = json.loads(raw)
        except ValueError:
            await _send_json(writer, 400, _error_body(400, "request body is not JSON"))
            return True
        unknown = self.adapters.check_model(body.get("model")) if self.adapters else None
        if unknown is not None:
            await _send_admin(writer, unknown)
            return True
        reply = self._next_reply(body)
        if reply.delay_s > 0 and await self._closed_within(reply.delay_s):
            return False
        if reply.disconnect:
            return False
        if reply.keepalive_s is not None:
            await self._send_keepalives(writer, reply.keepalive_s)
            return False
        if reply.raw_sse is not None:
            head = (
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
                "connection: close\r\n\r\n"
            )
            writer.write(head.encode() + "".join(f"{line}\n\n" for line in reply.raw_sse).encode())
            await writer.drain()
            return False
        if isinstance(reply.raw_body, (str, bytes)):
            data = reply.raw_body.encode() if isinstance(reply.raw_body, str) else reply.raw_body
            await _send_bytes(writer, reply.status, data, reply.content_type, reply.headers)
            return True
        if reply.raw_body is not None:
            await _send_json(writer, reply.status, reply.raw_body, reply.headers)
            return True
        if reply.status != 200:
            await _send_json(
                writer,
                reply.status,
                _error_body(reply.status, reply.error or "error"),
                reply.headers,
            )
            return True
        model = body.get("model", self.model)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            await self._send_stream(writer, reply, model, include_usage)
            return False
        await _send_json(writer, 200, self._completion(reply, model), reply.headers)
        return True

    async def _closed_within(self, seconds: float) -> bool:
        """Wait up to `seconds`; True when the server is stopping meanwhile."""
        assert self._closing is not None
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _send_keepalives(self, writer: asyncio.StreamWriter, every_s: float) -> None:
        head = (
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            "cache-control: no-cache\r\nconnection: close\r\n\r\n"
        )
        writer.write(head.encode())
        await writer.drain()
        while not await self._closed_within(every_s):
            writer.write(b": keep-alive\n\n")
            await writer.drain()  # raises ConnectionError once the client has gone

    def _completion(self, reply: ScriptedReply, model: str) -> dict[str, Any]:
        calls = [_wire_call(name, args) for name, args in reply.tool_calls]
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text if (reply.text is not None or not calls) else None,
            "refusal": None,
            "tool_calls": calls,
        }
        if message["content"] is None and not calls:
            message["content"] = ""
        return {
            "id": f"chatcmpl-{secrets.token_hex(8)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": reply.finish_reason or ("tool_calls" if calls else "stop"),
                    "stop_reason": None,
                }
            ],
            "usage": _usage(reply),
        }

    async def _send_stream(
        self, writer: asyncio.StreamWriter, reply: ScriptedReply, model: str, include_usage: bool
    ) -> None:
        completion_id = f"chatcmpl-{secrets.token_hex(8)}"
        created = int(time.time())

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            payload = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
                **extra,
            }
            return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()

        def delta(content: dict[str, Any], finish: str | None = None) -> bytes:
            return chunk(
                [{"index": 0, "delta": content, "logprobs": None, "finish_reason": finish}]
            )

        head = (
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            "cache-control: no-cache\r\nconnection: close\r\n\r\n"
        )
        writer.write(head.encode())
        writer.write(delta({"role": "assistant", "content": ""}))
        step = max(1, self.stream_chunk)
        if reply.text:
            for start in range(0, len(reply.text), step):
                writer.write(delta({"content": reply.text[start : start + step]}))
        for index, (name, args) in enumerate(reply.tool_calls):
            wire = _wire_call(name, args)
            first = {
                "id": wire["id"],
                "type": "function",
                "index": index,
                "function": {"name": name},
            }
            writer.write(delta({"content": None, "tool_calls": [first]}))
            text = wire["function"]["arguments"]
            for start in range(0, len(text), step):
                fragment = {"index": index, "function": {"arguments": text[start : start + step]}}
                writer.write(delta({"content": None, "tool_calls": [fragment]}))
            await writer.drain()
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        writer.write(delta({}, finish))
        if include_usage:
            writer.write(chunk([], usage=_usage(reply)))
        writer.write(b"data: [DONE]\n\n")
        await writer.drain()


def _wire_call(name: str, arguments: Mapping[str, Any] | str) -> dict[str, Any]:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {
        "id": f"chatcmpl-tool-{secrets.token_hex(8)}",
        "type": "function",
        "function": {"name": name, "arguments": text},
    }


def _usage(reply: ScriptedReply) -> dict[str, int]:
    produced = len((reply.text or "").split()) + sum(
        len(a if isinstance(a, str) else json.dumps(a)) // 4 for _, a in reply.tool_calls
    )
    return {"prompt_tokens": 10, "completion_tokens": produced, "total_tokens": 10 + produced}


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": _ERROR_TYPES.get(status, "APIError"),
            "param": None,
            "code": status,
        }
    }


async def _send_json(
    writer: asyncio.StreamWriter,
    status: int,
    payload: Mapping[str, Any],
    headers: Iterable[tuple[str, str]] = (),
) -> None:
    await _send_bytes(writer, status, json.dumps(payload).encode(), "application/json", headers)


async def _send_admin(writer: asyncio.StreamWriter, reply: AdminReply) -> None:
    """An adapter endpoint's answer: JSON, or text sent (as vLLM does) with no content type."""
    if isinstance(reply.body, str):
        await _send_bytes(writer, reply.status, reply.body.encode(), None)
    else:
        await _send_json(writer, reply.status, reply.body)


async def _send_bytes(
    writer: asyncio.StreamWriter,
    status: int,
    data: bytes,
    content_type: str | None,
    headers: Iterable[tuple[str, str]] = (),
) -> None:
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
        *([f"content-type: {content_type}"] if content_type else []),
        f"content-length: {len(data)}",
        *(f"{key}: {value}" for key, value in headers),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
    await writer.drain()


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes] | None:
    line = await reader.readline()
    if not line:
        return None
    try:
        method, path, _ = line.decode("latin-1").split(" ", 2)
    except ValueError:
        return None
    length = 0
    while True:
        header = await reader.readline()
        if header in (b"\r\n", b"\n", b""):
            break
        key, _, value = header.decode("latin-1").partition(":")
        if key.strip().lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return method, path, body
