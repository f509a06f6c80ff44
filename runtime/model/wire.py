"""Reading chat-completion replies off the wire, strictly.

A server (or a proxy in front of it) can answer 200 with something that is not
a chat completion: an HTML error page, JSON cut off mid-object, a `choices`
entry without a `message`, an event stream that stops before its
`finish_reason`. Each of these becomes a `MalformedReply` that says what was
wrong, never an `AttributeError` deep in the caller; a stream that ends before
its `finish_reason` is a `TruncatedReply`, and none of its (possibly partial)
tool calls is used.

Only the fields the runtime reads are checked: `choices[0].message.content`
and `.tool_calls`, `finish_reason`, `usage` and `model`. Unknown fields are
ignored, as vLLM and the llama.cpp server add their own.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import Any

from runtime.calls import ToolCallRequest
from runtime.model import compat

__all__ = [
    "MalformedReply",
    "ReplyParts",
    "StreamAssembler",
    "TruncatedReply",
    "parse_completion",
    "snippet",
    "sse_data",
]

_SNIPPET = 120


class MalformedReply(ValueError):
    """The body (or one stream event) is not a chat completion."""


class TruncatedReply(MalformedReply):
    """An event stream ended before the reply was complete."""


@dataclasses.dataclass(frozen=True, slots=True)
class ReplyParts:
    """The parts of one reply the client builds a `ModelTurn` from."""

    content: str | None
    calls: list[ToolCallRequest]
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    model: str | None


def snippet(text: str | bytes) -> str:
    """The start of a body, on one line, for an error message."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    flat = " ".join(text.split())
    return flat if len(flat) <= _SNIPPET else flat[:_SNIPPET] + "…"


def parse_completion(body: str) -> ReplyParts:
    """Read a non-streamed reply body.

    Raises:
        MalformedReply: The body is not JSON, or not a chat completion.
    """
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise MalformedReply(f"the reply is not JSON ({exc}): {snippet(body)!r}") from None
    if not isinstance(data, Mapping):
        raise MalformedReply(f"the reply is JSON but not an object: {snippet(body)!r}")
    if "error" in data and "choices" not in data:
        raise MalformedReply(f"the reply is an error: {compat.error_message(data, snippet(body))}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise MalformedReply(f"the reply has no choices: {snippet(body)!r}")
    choice = _mapping(choices[0], "choices[0]")
    message = _mapping(choice.get("message"), "choices[0].message")
    content = _optional_str(message.get("content"), "message.content")
    raw_calls = message.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise MalformedReply("message.tool_calls is not a list")
    calls = [_call(raw, index) for index, raw in enumerate(raw_calls)]
    prompt_tokens, completion_tokens = _usage(data.get("usage"))
    return ReplyParts(
        content=content,
        calls=[call for call in calls if call is not None],
        finish_reason=_optional_str(choice.get("finish_reason"), "finish_reason"),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        model=data.get("model") if isinstance(data.get("model"), str) else None,
    )


async def sse_data(lines: AsyncIterable[str]) -> AsyncIterator[str]:
    """The `data` of each server-sent event; comments (keep-alives) yield nothing.

    An event is dispatched at the blank line that ends it, as the SSE spec
    says, so an event cut off by a dropped connection is never yielded.
    """
    buffer: list[str] = []
    async for line in lines:
        if not line:
            if buffer:
                yield "\n".join(buffer)
                buffer = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            buffer.append(value[1:] if value.startswith(" ") else value)


class StreamAssembler:
    """Accumulates streamed chunks into one reply; tool-call deltas join by index."""

    def __init__(self) -> None:
        self.events = 0
        self.done = False
        self._text: list[str] = []
        self._slots: dict[int, dict[str, Any]] = {}
        self._finish_reason: str | None = None
        self._usage = (0, 0)
        self._model: str | None = None

    def add(self, data: str) -> None:
        """Take one event's data (`[DONE]` included).

        Raises:
            MalformedReply: The event is not a chat-completion chunk, or is an error.
        """
        self.events += 1
        if data.strip() == "[DONE]":
            self.done = True
            return
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise MalformedReply(
                f"stream event {self.events} is not JSON ({exc}): {snippet(data)!r}"
            ) from None
        if not isinstance(chunk, Mapping):
            raise MalformedReply(f"stream event {self.events} is not an object: {snippet(data)!r}")
        if "error" in chunk and "choices" not in chunk:
            raise MalformedReply(
                f"the stream carried an error: {compat.error_message(chunk, snippet(data))}"
            )
        if isinstance(chunk.get("model"), str):
            self._model = chunk["model"]
        if chunk.get("usage") is not None:
            self._usage = _usage(chunk["usage"])
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise MalformedReply(f"stream event {self.events}: choices is not a list")
        for raw in choices:
            choice = _mapping(raw, "choices[]")
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            self._add_delta(_mapping(delta, "choices[].delta"))
            reason = _optional_str(choice.get("finish_reason"), "finish_reason")
            if reason:
                self._finish_reason = reason

    def _add_delta(self, delta: Mapping[str, Any]) -> None:
        text = _optional_str(delta.get("content"), "delta.content")
        if text:
            self._text.append(text)
        calls = delta.get("tool_calls") or []
        if not isinstance(calls, list):
            raise MalformedReply("delta.tool_calls is not a list")
        for raw in calls:
            call = _mapping(raw, "delta.tool_calls[]")
            index = call.get("index", 0)
            if not isinstance(index, int):
                raise MalformedReply("a tool-call delta has no integer index")
            slot = self._slots.setdefault(index, {"id": None, "name": "", "arguments": []})
            if isinstance(call.get("id"), str) and call["id"]:
                slot["id"] = call["id"]
            function = call.get("function")
            if isinstance(function, Mapping):
                slot["name"] += _optional_str(function.get("name"), "function.name") or ""
                fragment = function.get("arguments")
                if isinstance(fragment, str):
                    slot["arguments"].append(fragment)

    def finish(self) -> ReplyParts:
        """The assembled reply.

        Raises:
            TruncatedReply: The stream ended before a `finish_reason`: its
                calls may be cut short, so none of them is used.
        """
        if self._finish_reason is None:
            how = "sent [DONE]" if self.done else "ended"
            raise TruncatedReply(
                f"the reply stream {how} before any finish_reason ({self.events} events, "
                f"{len(self._slots)} tool call(s) begun): nothing from it is used"
            )
        calls = [
            ToolCallRequest(
                id=slot["id"] or compat.new_call_id(),
                name=slot["name"],
                arguments="".join(slot["arguments"]),
            )
            for _, slot in sorted(self._slots.items())
        ]
        return ReplyParts(
            content="".join(self._text),
            calls=calls,
            finish_reason=self._finish_reason,
            prompt_tokens=self._usage[0],
            completion_tokens=self._usage[1],
            model=self._model,
        )


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedReply(f"{where} is {type(value).__name__}, not an object")
    return value


def _optional_str(value: Any, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise MalformedReply(f"{where} is {type(value).__name__}, not a string")


def _call(raw: Any, index: int) -> ToolCallRequest | None:
    call = _mapping(raw, f"tool_calls[{index}]")
    if call.get("type", "function") != "function":
        return None
    function = _mapping(call.get("function"), f"tool_calls[{index}].function")
    arguments = function.get("arguments")
    if isinstance(arguments, Mapping):  # some servers send an object, not a JSON string
        arguments = json.dumps(arguments)
    call_id = call.get("id")
    return ToolCallRequest(
        id=call_id if isinstance(call_id, str) and call_id else compat.new_call_id(),
        name=_optional_str(function.get("name"), "function.name") or "",
        arguments=_optional_str(arguments, "function.arguments") or "",
    )


def _usage(raw: Any) -> tuple[int, int]:
    if not isinstance(raw, Mapping):
        return 0, 0
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    return (
        prompt if isinstance(prompt, int) else 0,
        completion if isinstance(completion, int) else 0,
    )
