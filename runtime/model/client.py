"""The model seam: one short protocol and the OpenAI-compatible client behind it."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import random
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from runtime.calls import ToolCallRequest
from runtime.model import compat, wire
from runtime.model.call_form import (
    CALL_FORMS,
    CallForm,
    drop_unstated,
    parameters_by_name,
    spell_out_messages,
)
from runtime.model.settings import SamplingSettings
from runtime.model.transport import (
    ChatTransport,
    HTTPFailure,
    TransportTimeout,
    Unreachable,
    encode_body,
)


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

    @classmethod
    def from_reply(
        cls,
        content: str | None,
        calls: Sequence[ToolCallRequest],
        finish_reason: str | None,
        *,
        usage: Usage,
        model: str,
        read: str | None = None,
    ) -> ModelTurn:
        """Read an assistant reply: the one place a reply becomes a turn.

        The server's own `tool_calls` win; without them, `<tool_call>` blocks
        in the text are the calls (vLLM leaves them there for malformed JSON,
        servers without a tool parser always do). The finish reason is
        normalised to OpenAI's values.

        Args:
            content: The reply's text exactly as the server sent it.
            calls: The server's `tool_calls`, parsed.
            finish_reason: As the server reported it.
            usage: Token counts of the reply.
            model: The model that answered.
            read: The part of `content` to take text and calls from (default:
                all of it); think-first passes what is left outside the
                reasoning, so a call drafted while reasoning is not a call.
        """
        text = (content or "") if read is None else read
        from_text = False
        if not calls:
            text, calls = compat.extract_text_tool_calls(text)
            from_text = bool(calls)
        return cls(
            text=text,
            tool_calls=tuple(calls),
            finish_reason=compat.normalise_finish_reason(finish_reason, has_calls=bool(calls)),
            usage=usage,
            model=model,
            calls_from_text=from_text,
            content=content or "",
        )


class ModelError(RuntimeError):
    """The model server could not produce a reply.

    Attributes:
        kind: `connection`, `rate_limited`, `server_error`, `bad_request`,
            `not_found`, `auth`, `timeout`, `bad_response` (a 200 whose body
            is not a chat completion: an HTML page, cut-off JSON, a broken
            event) or `truncated` (a stream that ended before its
            `finish_reason`; none of its calls is used).
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


#: Defaults a person waits for: one request, one whole turn, one silent stream.
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_TURN_TIMEOUT_S = 60.0
DEFAULT_IDLE_TIMEOUT_S = 30.0


class _Deadline(TimeoutError):
    """One of the client's own time limits ran out during an attempt."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class OpenAICompatibleClient:
    """Talks to vLLM, the llama.cpp server or any OpenAI-compatible endpoint.

    Three time limits bound a turn (`complete`); a limit that runs out is a
    `ModelError` of kind `timeout`:

    - `timeout`: one request: for a plain reply, from sending it to the last
      byte; for a stream, until its first event. A request that runs out is
      retried like a dropped connection.
    - `turn_timeout`: all attempts of one turn and the backoff between
      them (time spent queued behind this client's own
      `max_concurrent_requests` is not counted). Default: 60 s, or
      `timeout` when that is longer.
    - `idle_timeout`: the longest silence between two events of a stream;
      keep-alive comments (`: ping`) do not reset it, so a server that only
      sends keep-alives is given up on.

    Args:
        base_url: E.g. `http://127.0.0.1:8000/v1`.
        model: The served model (or LoRA adapter) name.
        api_key: Sent as a bearer token; local servers ignore it.
        stream: Use server-sent events and accumulate tool-call deltas by index.
        timeout: Seconds for one request (see above).
        turn_timeout: Seconds for one turn, retries included.
        idle_timeout: Seconds of silence a stream may keep.
        timeout_s: Old name of `timeout`.
        retry: Backoff for transient failures.
        max_concurrent_requests: Requests this client has in flight at once.
            Each request costs the event loop some synchronous work (building
            and parsing it); bounding them keeps loop lag low when many runs
            share one client. Raise it for a batching server under heavy load.
        call_form: The form the served adapter writes calls in
            (`runtime.model.call_form`). With `every-key` (an adapter trained
            so, served by vLLM) earlier calls are sent in that form and the
            unstated (`null`) optional arguments of each reply's calls are
            dropped before the turn is returned. The embedded server does both
            itself; `plain` leaves calls as the server sent them.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str = "not-needed",
        stream: bool = False,
        timeout: float | None = None,
        turn_timeout: float | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S,
        timeout_s: float | None = None,
        retry: RetryPolicy = RetryPolicy(),
        max_concurrent_requests: int = 8,
        call_form: CallForm = "plain",
    ) -> None:
        if call_form not in CALL_FORMS:
            raise ValueError(f"call_form is one of {', '.join(CALL_FORMS)}, not {call_form!r}")
        self.call_form = call_form
        attempt = timeout if timeout is not None else timeout_s
        self.timeout = attempt if attempt is not None else DEFAULT_TIMEOUT_S
        self.turn_timeout = (
            turn_timeout if turn_timeout is not None else max(DEFAULT_TURN_TIMEOUT_S, self.timeout)
        )
        self.idle_timeout = idle_timeout
        for name in ("timeout", "turn_timeout", "idle_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds")
        self.model = model
        self.base_url = base_url
        self.stream = stream
        self.retry = retry
        self.max_concurrent_requests = max_concurrent_requests
        self._in_flight = asyncio.Semaphore(max_concurrent_requests)
        # The HTTP layer's own limit is only a backstop: the limits above are
        # enforced around each attempt, where they can be told apart.
        self._transport = ChatTransport(
            base_url, api_key, timeout_s=max(self.timeout, self.idle_timeout) + 1.0
        )

    async def aclose(self) -> None:
        await self._transport.aclose()

    def with_model(
        self, model: str, *, call_form: CallForm | None = None
    ) -> OpenAICompatibleClient:
        """This client sending `model` instead: same server, connections, limits and timeouts.

        The copy shares this client's connections and its in-flight limit;
        close only this one (closing either closes both). `call_form`, when
        given, replaces this client's (the form `model` writes calls in).
        """
        if call_form is not None and call_form not in CALL_FORMS:
            raise ValueError(f"call_form is one of {', '.join(CALL_FORMS)}, not {call_form!r}")
        renamed = copy.copy(self)
        renamed.model = model
        if call_form is not None:
            renamed.call_form = call_form
        return renamed

    async def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        settings: SamplingSettings,
    ) -> ModelTurn:
        fields, extra_body = settings.request_fields(has_tools=bool(tools))
        # Built and encoded here, once per turn, and sent by `ChatTransport`:
        # the SDK's `chat.completions.create` re-walks every message and tool
        # schema through its TypedDict transform (~2 ms of blocking CPU per
        # request here), and even its generic `post` spends as much again as
        # the HTTP exchange itself. The wire format is the same.
        every_key = self.call_form == "every-key" and bool(tools)
        if every_key:
            messages = spell_out_messages(messages, tools)
        request: dict[str, Any] = {
            "model": self.model,
            "messages": compat.repair_history(messages),
            **fields,
            **extra_body,
        }
        if tools:
            request["tools"] = tools
        if self.stream:
            request["stream"] = True
            request["stream_options"] = {"include_usage": True}
        body = b""
        loop = asyncio.get_running_loop()
        spent = 0.0  # on requests and backoff; not queued behind our own semaphore
        attempt = 0
        while True:
            async with self._in_flight:
                # Encoded once a slot is free: a burst of new runs queued behind
                # the limit costs the loop little at once, each encodes in turn.
                if not body:
                    try:
                        body = encode_body(request)
                    except ValueError as exc:  # NaN, a lone surrogate: a retry changes nothing
                        raise self._classify(exc, 1) from None
                started = loop.time()
                try:
                    turn = await self._attempt(body, self.turn_timeout - spent)
                    return _without_unstated(turn, tools) if every_key else turn
                except Exception as exc:
                    failure, error = exc, self._classify(exc, attempt + 1)
                finally:
                    spent += loop.time() - started
            left = self.turn_timeout - spent
            if not error.retryable or attempt + 1 >= self.retry.attempts or left <= 0:
                if error.retryable and left <= 0:
                    error = self._turn_timed_out(error, attempt + 1)
                raise error from None
            delay = self.retry.delay(attempt, self._retry_after(failure))
            if delay >= left:
                raise self._turn_timed_out(error, attempt + 1) from None
            await asyncio.sleep(delay)
            spent += delay
            attempt += 1

    def _turn_timed_out(self, last: ModelError, attempts: int) -> ModelError:
        return ModelError(
            "timeout",
            f"the model server at {self.base_url} gave no complete reply within the turn's "
            f"{self.turn_timeout:g} s ({attempts} attempt(s); last: {last.kind}: {last})",
            retryable=False,
            attempts=attempts,
        )

    async def _attempt(self, body: bytes, budget: float) -> ModelTurn:
        if budget <= 0:
            raise _Deadline(f"the turn's {self.turn_timeout:g} s")
        if self.stream:
            return await self._complete_streaming(body, budget)
        limit = min(self.timeout, budget)
        what = (
            f"{self.timeout:g} s"
            if limit == self.timeout
            else f"the turn's {self.turn_timeout:g} s"
        )
        try:
            async with asyncio.timeout(limit):
                return await self._complete_once(body)
        except TimeoutError:
            raise _Deadline(what) from None

    def _classify(self, exc: Exception, attempts: int) -> ModelError:
        where = f"model server at {self.base_url}"
        if isinstance(exc, ModelError):
            return exc
        if isinstance(exc, _Deadline):
            return ModelError(
                "timeout",
                f"the {where} did not answer within {exc.what}",
                retryable=True,
                attempts=attempts,
            )
        if isinstance(exc, wire.TruncatedReply):
            return ModelError("truncated", f"the {where}: {exc}", retryable=True, attempts=attempts)
        if isinstance(exc, wire.MalformedReply):
            return ModelError(
                "bad_response",
                f"the {where} sent a reply that is not a chat completion: {exc}",
                retryable=False,
                attempts=attempts,
            )
        if isinstance(exc, TransportTimeout) or (
            _is_transport_error(exc) and "Timeout" in type(exc).__name__
        ):
            return ModelError("timeout", f"{where} timed out", retryable=True, attempts=attempts)
        if isinstance(exc, Unreachable):
            return ModelError(
                "connection",
                f"cannot reach the {where} ({exc.__cause__ or exc}); is it running? "
                f"(`agentrt serve-model` starts the embedded one)",
                retryable=True,
                attempts=attempts,
            )
        if isinstance(exc, HTTPFailure):
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
        return ModelError(
            "bad_response",
            f"{where}: {type(exc).__name__}: {exc}",
            retryable=False,
            attempts=attempts,
        )

    def _retry_after(self, exc: Exception) -> float | None:
        if not isinstance(exc, HTTPFailure):
            return None
        value = exc.headers.get("retry-after")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None

    async def _complete_once(self, body: bytes) -> ModelTurn:
        # Read as text and parsed here, strictly: an HTML page or a
        # `message: null` is a MalformedReply, not an AttributeError further on.
        return self._turn(wire.parse_completion(await self._transport.post(body)))

    async def _complete_streaming(self, body: bytes, budget: float) -> ModelTurn:
        loop = asyncio.get_running_loop()
        turn_end = loop.time() + budget

        def limit(seconds: float, what: str) -> tuple[float, str]:
            if loop.time() + seconds < turn_end:
                return loop.time() + seconds, what
            return turn_end, f"the turn's {self.turn_timeout:g} s"

        when, what = limit(self.timeout, f"{self.timeout:g} s")
        assembler = wire.StreamAssembler()
        try:
            async with (
                asyncio.timeout_at(when) as deadline,
                self._transport.stream(body) as response,
            ):
                # From the response head on, silence is bounded too.
                if loop.time() + self.idle_timeout < when:
                    when, what = limit(self.idle_timeout, f"{self.idle_timeout:g} s of silence")
                    deadline.reschedule(when)
                content_type = response.headers.get("content-type", "")
                if "event-stream" not in content_type:
                    await response.aread()
                    raise wire.MalformedReply(
                        f"a stream was asked for, the reply is {content_type or 'untyped'}: "
                        f"{wire.snippet(response.text)!r}"
                    )
                async for data in wire.sse_data(response.aiter_lines()):
                    assembler.add(data)
                    if assembler.done:
                        break
                    # Only events reset the clock: keep-alive comments do not.
                    when, what = limit(self.idle_timeout, f"{self.idle_timeout:g} s of silence")
                    deadline.reschedule(when)
        except TimeoutError:
            raise _Deadline(what) from None
        return self._turn(assembler.finish())

    def _turn(self, parts: wire.ReplyParts) -> ModelTurn:
        return ModelTurn.from_reply(
            parts.content,
            parts.calls,
            parts.finish_reason,
            usage=Usage(parts.prompt_tokens, parts.completion_tokens),
            model=parts.model or self.model,
        )


def _without_unstated(turn: ModelTurn, tools: Sequence[Mapping[str, Any]]) -> ModelTurn:
    """`turn` with each call's unstated (`null`) optional arguments dropped; a
    call whose arguments are not a JSON object is left for the gate to report."""
    parameters = parameters_by_name(tools)
    calls = []
    for call in turn.tool_calls:
        try:
            arguments = json.loads(call.arguments)
        except ValueError:
            arguments = None
        if call.name in parameters and isinstance(arguments, dict):
            kept = drop_unstated(arguments, parameters[call.name])
            if kept != arguments:
                call = dataclasses.replace(call, arguments=json.dumps(kept, ensure_ascii=False))
        calls.append(call)
    return dataclasses.replace(turn, tool_calls=tuple(calls))
