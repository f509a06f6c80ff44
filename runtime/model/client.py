"""The model seam: one short protocol and the OpenAI-compatible client behind it."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from runtime.calls import ToolCallRequest
from runtime.model import compat
from runtime.model.settings import SamplingSettings


@dataclasses.dataclass(slots=True)
class Usage:
    """Token counts, summed over a run's turns."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class ModelTurn:
    """One assistant reply: text and/or proposed tool calls.

    Attributes:
        text: The assistant's text with any `<tool_call>` blocks removed.
        tool_calls: Calls from the server's `tool_calls`, or recovered from text.
        finish_reason: `stop`, `length`, `tool_calls` or `content_filter`.
        calls_from_text: True when the calls were recovered from `<tool_call>` text.
        content: The text exactly as the server sent it, blocks included.
    """

    text: str
    tool_calls: tuple[ToolCallRequest, ...]
    finish_reason: str
    usage: Usage
    model: str
    calls_from_text: bool = False
    content: str = ""


class ModelError(RuntimeError):
    """The model server could not produce a reply.

    Attributes:
        kind: `connection`, `rate_limited`, `server_error`, `bad_request`,
            `not_found`, `auth`, or `timeout`.
        retryable: Whether the failure was worth retrying (it was, up to the limit).
        attempts: How many requests were made.
    """

    def __init__(self, kind: str, message: str, *, retryable: bool, attempts: int) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.attempts = attempts


class ModelClient(Protocol):
    """Anything that turns a history and tool schemas into the next assistant turn."""

    model: str

    async def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        settings: SamplingSettings,
    ) -> ModelTurn:
        """Return the next turn, or raise `ModelError`."""
        ...

    async def aclose(self) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff for connection errors, 429 and 5xx: exponential with full jitter."""

    attempts: int = 4
    base_delay_s: float = 0.25
    max_delay_s: float = 4.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay_s)
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt))


def _is_transport_error(exc: BaseException) -> bool:
    """A network failure raised by the HTTP layer below the SDK (e.g. mid-stream)."""
    module = type(exc).__module__
    return isinstance(exc, OSError) or module.startswith(("httpx", "httpcore", "h11"))


class OpenAICompatibleClient:
    """Talks to vLLM, the llama.cpp server or any OpenAI-compatible endpoint.

    Args:
        base_url: E.g. `http://127.0.0.1:8000/v1`.
        model: The served model (or LoRA adapter) name.
        api_key: Sent as a bearer token; local servers ignore it.
        stream: Use server-sent events and accumulate tool-call deltas by index.
        timeout_s: Per-request timeout.
        retry: Backoff for transient failures.
        max_concurrent_requests: Requests this client has in flight at once.
            Each request costs the event loop some synchronous work (building
            and parsing it); bounding them keeps loop lag low when many runs
            share one client. Raise it for a batching server under heavy load.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str = "not-needed",
        stream: bool = False,
        timeout_s: float = 120.0,
        retry: RetryPolicy = RetryPolicy(),
        max_concurrent_requests: int = 8,
    ) -> None:
        import openai  # deferred: keeps `import runtime` cheap
        import openai.types.chat

        self.model = model
        self.base_url = base_url
        self.stream = stream
        self.retry = retry
        self._openai = openai
        self.max_concurrent_requests = max_concurrent_requests
        self._in_flight = asyncio.Semaphore(max_concurrent_requests)
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        settings: SamplingSettings,
    ) -> ModelTurn:
        fields, extra_body = settings.request_fields(has_tools=bool(tools))
        # The body goes through the SDK's generic `post`: `chat.completions.create`
        # re-walks every message and tool schema through its TypedDict transform
        # (~2 ms of blocking CPU per request here), which stalls the event loop
        # when many runs share it. The wire format is the same.
        request: dict[str, Any] = {
            "model": self.model,
            "messages": compat.repair_history(messages),
            **fields,
            **extra_body,
        }
        if tools:
            request["tools"] = list(tools)
        attempt = 0
        while True:
            try:
                async with self._in_flight:
                    if self.stream:
                        return await self._complete_streaming(request)
                    return await self._complete_once(request)
            except Exception as exc:
                if not isinstance(exc, self._openai.APIError) and not _is_transport_error(exc):
                    raise
                error = self._classify(exc, attempt + 1)
                if not error.retryable or attempt + 1 >= self.retry.attempts:
                    raise error from None
                await asyncio.sleep(self.retry.delay(attempt, self._retry_after(exc)))
                attempt += 1

    def _classify(self, exc: Exception, attempts: int) -> ModelError:
        openai = self._openai
        where = f"model server at {self.base_url}"
        if isinstance(exc, openai.APITimeoutError):
            return ModelError("timeout", f"{where} timed out", retryable=True, attempts=attempts)
        if isinstance(exc, openai.APIConnectionError):
            return ModelError(
                "connection",
                f"cannot reach the {where} ({exc.__cause__ or exc}); is it running? "
                f"(`agentrt serve-model` starts the embedded one)",
                retryable=True,
                attempts=attempts,
            )
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            message = compat.error_message(exc.body, str(exc))
            if status == 429:
                return ModelError(
                    "rate_limited",
                    f"{where} answered 429: {message}",
                    retryable=True,
                    attempts=attempts,
                )
            if status >= 500 and "validation error" in message:
                # llama.cpp's server answers 500 for a request it cannot parse: not transient
                return ModelError(
                    "bad_request",
                    f"{where} rejected the request: {message}",
                    retryable=False,
                    attempts=attempts,
                )
            if status >= 500:
                return ModelError(
                    "server_error",
                    f"{where} answered {status}: {message}",
                    retryable=True,
                    attempts=attempts,
                )
            kind = {401: "auth", 403: "auth", 404: "not_found"}.get(status, "bad_request")
            return ModelError(
                kind, f"{where} answered {status}: {message}", retryable=False, attempts=attempts
            )
        if _is_transport_error(exc):
            return ModelError(
                "connection",
                f"the connection to the {where} broke mid-reply ({type(exc).__name__}: {exc})",
                retryable=True,
                attempts=attempts,
            )
        return ModelError("bad_response", f"{where}: {exc}", retryable=False, attempts=attempts)

    def _retry_after(self, exc: Exception) -> float | None:
        response = getattr(exc, "response", None)
        if response is None:
            return None
        value = response.headers.get("retry-after")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None

    async def _complete_once(self, request: dict[str, Any]) -> ModelTurn:
        from openai.types.chat import ChatCompletion

        completion = await self._client.post(
            "/chat/completions", cast_to=ChatCompletion, body=request
        )
        if not completion.choices:
            raise ModelError(
                "bad_response",
                f"the model server at {self.base_url} returned no choices",
                retryable=False,
                attempts=1,
            )
        choice = completion.choices[0]
        message = choice.message
        calls = [
            ToolCallRequest(
                id=call.id or compat.new_call_id(),
                name=call.function.name or "",
                arguments=call.function.arguments or "",
            )
            for call in (message.tool_calls or [])
            if call.type == "function"
        ]
        usage = Usage()
        if completion.usage is not None:
            usage = Usage(
                completion.usage.prompt_tokens or 0, completion.usage.completion_tokens or 0
            )
        return self._turn(message.content, calls, choice.finish_reason, usage, completion.model)

    async def _complete_streaming(self, request: dict[str, Any]) -> ModelTurn:
        from openai import AsyncStream
        from openai.types.chat import ChatCompletion, ChatCompletionChunk

        body = {**request, "stream": True, "stream_options": {"include_usage": True}}
        stream = await self._client.post(
            "/chat/completions",
            cast_to=ChatCompletion,
            body=body,
            stream=True,
            stream_cls=AsyncStream[ChatCompletionChunk],
        )
        text_parts: list[str] = []
        slots: dict[int, dict[str, Any]] = {}
        finish_reason: str | None = None
        usage = Usage()
        model = self.model
        async for chunk in stream:
            model = chunk.model or model
            if chunk.usage is not None:
                usage = Usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
            for choice in chunk.choices:
                delta = choice.delta
                if delta.content:
                    text_parts.append(delta.content)
                for call_delta in delta.tool_calls or []:
                    slot = slots.setdefault(
                        call_delta.index, {"id": None, "name": "", "arguments": []}
                    )
                    if call_delta.id:
                        slot["id"] = call_delta.id
                    function = call_delta.function
                    if function is not None:
                        if function.name:
                            slot["name"] += function.name
                        if function.arguments:
                            slot["arguments"].append(function.arguments)
                if choice.finish_reason:
                    finish_reason = choice.finish_reason
        calls = [
            ToolCallRequest(
                id=slot["id"] or compat.new_call_id(),
                name=slot["name"],
                arguments="".join(slot["arguments"]),
            )
            for _, slot in sorted(slots.items())
        ]
        return self._turn("".join(text_parts), calls, finish_reason, usage, model)

    def _turn(
        self,
        content: str | None,
        calls: list[ToolCallRequest],
        finish_reason: str | None,
        usage: Usage,
        model: str,
    ) -> ModelTurn:
        from_text = False
        text = content or ""
        if not calls:
            text, calls = compat.extract_text_tool_calls(text)
            from_text = bool(calls)
        return ModelTurn(
            text=text,
            tool_calls=tuple(calls),
            finish_reason=compat.normalise_finish_reason(finish_reason, has_calls=bool(calls)),
            usage=usage,
            model=model,
            calls_from_text=from_text,
            content=content or "",
        )
