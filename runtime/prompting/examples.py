"""Few-shot example conversations, checked against the tools they call.

An example is a short conversation in the OpenAI message format: a user
request, assistant turns that may call tools, the tool results, and the
answer. Examples load from Python data or a file (JSON lines with one
`{"messages": [...]}` per line, the training-data format, or a JSON list of
such objects) and are validated at load time: every call must name a tool the
agent has, with arguments that parse strictly and match the tool's schema, and
every call must be answered by a tool message. A wrong example teaches the
model a wrong call, so it is an error, never a warning.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema

from runtime.arguments import StrictJSONError, parse_strict_json
from runtime.prompting.template import PromptError
from runtime.schema import schema_validator

__all__ = ["FewShotExamples", "load_examples"]

_ROLES = {"user", "assistant", "tool"}


class FewShotExamples:
    """Validated example conversations, as messages ready to send.

    Calls get stable ids (`example-<n>-call-<m>`) where none is given, and
    arguments are normalised to compact JSON strings, so rendering is
    deterministic.
    """

    def __init__(self, conversations: Sequence[Sequence[Mapping[str, Any]]]) -> None:
        self.conversations: tuple[tuple[dict[str, Any], ...], ...] = tuple(
            tuple(_normalise(index, conversation))
            for index, conversation in enumerate(conversations, start=1)
        )

    def __len__(self) -> int:
        return len(self.conversations)

    def messages(self) -> list[dict[str, Any]]:
        """All conversations, flattened, in order."""
        return [dict(message) for conversation in self.conversations for message in conversation]

    def check_tools(self, tools: Sequence[Mapping[str, Any]]) -> None:
        """Validate every call against OpenAI-style tool schemas.

        Raises:
            PromptError: naming the example, the message and what is wrong.
        """
        schemas = {
            tool["function"]["name"]: tool["function"].get("parameters") or {}
            for tool in tools
            if isinstance(tool, Mapping) and "function" in tool
        }
        for index, conversation in enumerate(self.conversations, start=1):
            for position, message in enumerate(conversation, start=1):
                for call in message.get("tool_calls") or ():
                    where = f"example {index}, message {position}"
                    _check_call(where, call["function"], schemas)


def load_examples(
    source: str | Path | Sequence[Any] | FewShotExamples,
) -> FewShotExamples:
    """Examples from a file path, a list of conversations, or a flat message list.

    A flat list of messages (dicts with `role`) is one conversation; a list of
    lists, or of `{"messages": [...]}` objects, is several.
    """
    if isinstance(source, FewShotExamples):
        return source
    if isinstance(source, (str, Path)):
        return FewShotExamples(_read_file(Path(source)))
    items = list(source)
    if not items:
        return FewShotExamples([])
    if all(isinstance(item, Mapping) and "role" in item for item in items):
        return FewShotExamples([items])
    conversations = []
    for index, item in enumerate(items, start=1):
        if isinstance(item, Mapping) and "messages" in item:
            conversations.append(item["messages"])
        elif isinstance(item, Sequence) and not isinstance(item, str):
            conversations.append(item)
        else:
            raise PromptError(
                f"example {index}: expected a list of messages or {{'messages': [...]}}"
            )
    return FewShotExamples(conversations)


def _read_file(path: Path) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PromptError(f"cannot read examples {path}: {exc}") from None
    stripped = text.lstrip()
    try:
        if stripped.startswith("["):
            rows = json.loads(text)
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as exc:
        raise PromptError(f"examples {path} are not JSON / JSON lines: {exc}") from None
    out = []
    for number, row in enumerate(rows, start=1):
        if isinstance(row, Mapping) and isinstance(row.get("messages"), list):
            messages = row["messages"]
            # Training examples may carry the system prompt; few-shot turns must not.
            out.append([m for m in messages if not _is_system(m)])
        else:
            raise PromptError(f"examples {path}, entry {number}: expected {{'messages': [...]}}")
    return out


def _is_system(message: Any) -> bool:
    return isinstance(message, Mapping) and message.get("role") == "system"


def _normalise(index: int, conversation: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if not conversation:
        raise PromptError(f"example {index} is empty")
    out: list[dict[str, Any]] = []
    waiting: list[str] = []  # call ids still owed a tool message
    calls_seen = 0
    for position, raw in enumerate(conversation, start=1):
        where = f"example {index}, message {position}"
        if not isinstance(raw, Mapping):
            raise PromptError(f"{where}: expected a message object")
        role = raw.get("role")
        if role not in _ROLES:
            raise PromptError(f"{where}: role {role!r} is not allowed (use user, assistant, tool)")
        if position == 1 and role != "user":
            raise PromptError(f"{where}: an example starts with the user's request")
        if role != "tool" and waiting:
            raise PromptError(f"{where}: call {waiting[0]} has no tool message before this one")
        if role == "tool":
            out.append(_tool_message(where, raw, waiting))
            continue
        content = raw.get("content")
        if content is not None and not isinstance(content, str):
            raise PromptError(f"{where}: content must be a string")
        message: dict[str, Any] = {"role": role, "content": content or ""}
        calls = raw.get("tool_calls") or []
        if calls and role != "assistant":
            raise PromptError(f"{where}: only assistant messages carry tool_calls")
        if calls:
            message["tool_calls"] = []
            for call in calls:
                calls_seen += 1
                normalised = _normalise_call(where, call, f"example-{index}-call-{calls_seen}")
                message["tool_calls"].append(normalised)
                waiting.append(normalised["id"])
        elif role == "user" and not (content or "").strip():
            raise PromptError(f"{where}: the user message is empty")
        out.append(message)
    if waiting:
        raise PromptError(f"example {index}: call {waiting[0]} has no tool message")
    return out


def _normalise_call(where: str, call: Any, default_id: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise PromptError(f"{where}: a tool call needs function.name")
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = parse_strict_json(arguments)
        except StrictJSONError as exc:
            raise PromptError(f"{where}: call {function['name']!r}: {exc}") from None
    if not isinstance(arguments, Mapping):
        raise PromptError(f"{where}: call {function['name']!r}: arguments must be an object")
    call_id = call.get("id") or default_id
    return {
        "id": str(call_id),
        "type": "function",
        "function": {
            "name": function["name"],
            "arguments": json.dumps(arguments, ensure_ascii=False, separators=(", ", ": ")),
        },
    }


def _tool_message(where: str, raw: Mapping[str, Any], waiting: list[str]) -> dict[str, Any]:
    if not waiting:
        raise PromptError(f"{where}: a tool message must answer an assistant tool call")
    call_id = raw.get("tool_call_id") or waiting[0]
    if call_id not in waiting:
        raise PromptError(f"{where}: tool_call_id {call_id!r} matches no open call")
    waiting.remove(call_id)
    content = raw.get("content", "")
    if not isinstance(content, str):
        content = json.dumps(content, ensure_ascii=False)
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _check_call(where: str, function: Mapping[str, Any], schemas: Mapping[str, Any]) -> None:
    name = function["name"]
    if name not in schemas:
        known = ", ".join(sorted(schemas)) or "(none)"
        raise PromptError(f"{where}: calls unknown tool {name!r}; the agent's tools: {known}")
    arguments = json.loads(function["arguments"])
    schema = schemas[name]
    try:
        validator = schema_validator(schema)  # the gate's reading of the schema
    except jsonschema.SchemaError as exc:
        raise PromptError(f"{where}: the schema of {name!r} is invalid: {exc.message}") from None
    errors = sorted(
        validator.iter_errors(arguments), key=lambda e: [str(p) for p in e.absolute_path]
    )
    if errors:
        first = errors[0]
        at = "/".join(str(p) for p in first.absolute_path) or "(arguments)"
        raise PromptError(f"{where}: call {name!r} has invalid arguments at {at}: {first.message}")
