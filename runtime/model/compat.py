"""Server quirks, handled in one place so the client has a single code path.

- vLLM's hermes parser leaves `<tool_call>{...}</tool_call>` text in `content`
  (and no `tool_calls`) when the JSON inside is malformed or `tool_choice` is
  `none`; servers without a tool parser always do. `extract_text_tool_calls`
  recovers those calls so the gate can judge them. A small model sometimes ends
  a plain answer with a stray `</tool_call>` (the template's closing tag, no
  call before it); the answer's text is given without it (`content` keeps it).
- vLLM `json.loads` every earlier assistant tool call in the history and
  answers 400 (and drops the connection) when one does not parse;
  `repair_history` sends such arguments back as `{}`.
- The llama.cpp server rejects an assistant message whose `content` is null.
- llama.cpp compiles `tools` schemas into a sampling grammar that explodes (and
  crashes the server) on large length bounds such as `maxLength: 4096`;
  `model_facing_tools` drops such bounds from what the model sees. The gate
  still validates against the full schema.
- Error bodies are `{"error": {"message", "type", "param", "code"}}` on vLLM,
  sometimes a bare string elsewhere: `error_message` reads both.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from runtime.calls import ToolCallRequest

_BLOCK_RE = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|\Z)", re.DOTALL)
_STRAY_CLOSE_RE = re.compile(r"\s*</tool_call>")
_NAME_RE = re.compile(r'"name"\s*:\s*"([^"\\]{1,128})"')
# The arguments object of a block whose JSON is broken: closed by the outer
# brace when present, else everything to the end (the model hit max_tokens).
_ARGS_RE = re.compile(r'"(?:arguments|parameters)"\s*:\s*(\{.*\})\s*\}\s*$', re.DOTALL)
_ARGS_OPEN_RE = re.compile(r'"(?:arguments|parameters)"\s*:\s*(\{.*)$', re.DOTALL)
_FINISH_REASONS = {"stop", "length", "tool_calls", "content_filter", "function_call"}


# Length and count bounds above this are dropped from the schemas sent to the
# model; the gate enforces them anyway.
_MODEL_BOUND_LIMIT = 64
_BOUND_KEYS = ("maxLength", "minLength", "maxItems", "minItems", "maxProperties")


def model_facing_tools(tools: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The `tools` array as sent to a model server, without grammar-hostile bounds."""
    return [_relax(tool) for tool in tools]


def _relax(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {
            key: _relax(value)
            for key, value in node.items()
            if not (key in _BOUND_KEYS and isinstance(value, int) and value > _MODEL_BOUND_LIMIT)
        }
    if isinstance(node, list):
        return [_relax(item) for item in node]
    return node


def new_call_id() -> str:
    """An id in vLLM's format, for calls recovered from text."""
    return f"chatcmpl-tool-{secrets.token_hex(8)}"


def extract_text_tool_calls(text: str | None) -> tuple[str, list[ToolCallRequest]]:
    """Find `<tool_call>` blocks in assistant text.

    Returns the text with the blocks removed and one `ToolCallRequest` per
    block. A block whose JSON does not parse still becomes a request (name
    salvaged when possible, arguments = the raw text) so the gate rejects it
    with a reason the model can read, instead of the call silently vanishing.
    An unterminated final block (the model hit `max_tokens`) counts too. A
    closing tag with no block is dropped from the text.
    """
    if not text:
        return "", []
    if "<tool_call>" not in text:
        return _without_stray_closers(text), []
    calls: list[ToolCallRequest] = []
    for match in _BLOCK_RE.finditer(text):
        body = match.group(1).strip()
        if not body:
            continue
        calls.append(_call_from_block(body))
    remaining = _without_stray_closers(_BLOCK_RE.sub("", text)).strip()
    return remaining, calls


def _without_stray_closers(text: str) -> str:
    if "</tool_call>" not in text:
        return text
    return _STRAY_CLOSE_RE.sub("", text).strip()


def _call_from_block(body: str) -> ToolCallRequest:
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("name"), str):
        arguments = payload.get("arguments", payload.get("parameters", {}))
        if isinstance(arguments, str):
            args_text = arguments
        else:
            args_text = json.dumps(arguments, ensure_ascii=False)
        return ToolCallRequest(
            id=new_call_id(), name=payload["name"], arguments=args_text, raw=body
        )
    name_match = _NAME_RE.search(body)
    args_match = _ARGS_RE.search(body) or _ARGS_OPEN_RE.search(body)
    return ToolCallRequest(
        id=new_call_id(),
        name=name_match.group(1) if name_match else "",
        arguments=args_match.group(1) if args_match else body,
        raw=body,
    )


def normalise_finish_reason(reason: str | None, *, has_calls: bool) -> str:
    """Map server variations onto OpenAI's values.

    vLLM reports `stop` for a named `tool_choice` even though it returned a
    call; some servers report `tool_calls` with none; unknown values count as
    `stop`.
    """
    if has_calls:
        return "tool_calls" if reason != "length" else "length"
    if reason in _FINISH_REASONS and reason != "tool_calls":
        return reason
    return "stop"


def _arguments_parse(arguments: Any) -> bool:
    if not isinstance(arguments, str):
        return False
    try:
        return isinstance(json.loads(arguments), dict)
    except ValueError:
        return False


def repair_history(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The history as any OpenAI-compatible server accepts it.

    Assistant `content` of None becomes "" (llama.cpp), and a tool call whose
    `arguments` is not a JSON object goes back as "{}" (vLLM answers 400
    otherwise; the tool message that follows already tells the model what was
    wrong with the original).

    The caller's messages are never changed: a message that needs a repair is
    copied first, and one that needs none (nearly all, turn after turn) is
    passed through as it is, so a request does not copy the whole history.
    """
    repaired: list[dict[str, Any]] = []
    for message in messages:
        if message.get("role") == "assistant" and _needs_repair(message):
            repaired.append(_repaired(message))
        else:
            repaired.append(message if type(message) is dict else dict(message))
    return repaired


def _needs_repair(message: Mapping[str, Any]) -> bool:
    if message.get("content") is None:
        return True
    calls = message.get("tool_calls")
    if not calls:
        return "tool_calls" in message
    return not all(_arguments_parse(call.get("function", {}).get("arguments")) for call in calls)


def _repaired(message: Mapping[str, Any]) -> dict[str, Any]:
    item = dict(message)
    if item.get("content") is None:
        item["content"] = ""
    calls = item.get("tool_calls")
    if calls:
        fixed = []
        for call in calls:
            function = dict(call.get("function", {}))
            if not _arguments_parse(function.get("arguments")):
                function["arguments"] = "{}"
            fixed.append({**call, "function": function})
        item["tool_calls"] = fixed
    elif "tool_calls" in item:
        del item["tool_calls"]
    return item


def error_message(body: object, fallback: str) -> str:
    """The human message in an error body, whatever shape the server used."""
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping):
            message = error.get("message") or error.get("detail")
            if isinstance(message, str) and message:
                return message.strip().splitlines()[0][:500]
        elif isinstance(error, str) and error:
            return error[:500]
    if isinstance(body, str) and body:
        return body[:500]
    return fallback
