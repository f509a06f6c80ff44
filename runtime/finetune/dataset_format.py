"""The dataset format: OpenAI fine-tuning JSON lines (`messages` + `tools`).

One example per line::

    {"messages": [{"role": "user", "content": "..."},
                  {"role": "assistant", "content": "", "tool_calls": [
                      {"id": "call_0", "type": "function",
                       "function": {"name": "calculate", "arguments": "{\\"expression\\": \\"2+2\\"}"}}]},
                  {"role": "tool", "tool_call_id": "call_0", "content": "4"},
                  {"role": "assistant", "content": "2 + 2 is 4."}],
     "tools": [...], "metadata": {"kind": "trajectory", "source": "synth", ...}}

Arguments stay JSON *strings* from end to end: loading rows into a columnar
table (`datasets.Dataset.from_list`) would merge every tool's argument keys into
one struct and fill the gaps with nulls, and a model trained on that learns to
send `null` for other tools' keys. `metadata` is ours (kind, source, template
id); `strip_metadata` removes it for services that reject unknown keys.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "KINDS",
    "DatasetFormatError",
    "Example",
    "ExpectedCall",
    "assistant_call_message",
    "expected_turn",
    "first_request",
    "read_jsonl",
    "strip_metadata",
    "validate_example",
    "write_jsonl",
]

Example = dict[str, Any]
Kind = Literal["single", "parallel", "trajectory", "no_tool"]
KINDS: tuple[Kind, ...] = ("single", "parallel", "trajectory", "no_tool")


class DatasetFormatError(ValueError):
    """A line is not a valid example; the message names the line and the problem."""


ExpectedCall = tuple[str, dict[str, Any]]


def assistant_call_message(
    calls: Sequence[tuple[str, Mapping[str, Any]]], *, id_prefix: str = "call_"
) -> dict[str, Any]:
    """An assistant turn proposing `calls` (name, arguments), arguments as JSON strings."""
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": f"{id_prefix}{index}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(dict(args), ensure_ascii=False)},
            }
            for index, (name, args) in enumerate(calls)
        ],
    }


def first_request(example: Mapping[str, Any]) -> str:
    """The text of the first user message (what curation embeds)."""
    for message in example.get("messages", []):
        if message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def expected_turn(example: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[ExpectedCall]]:
    """Split an example into the prompt and the calls of the first assistant turn.

    Returns:
        The messages before the first assistant turn, and that turn's calls as
        (name, parsed arguments); an empty list means the right answer is no call.
    """
    messages = list(example.get("messages", []))
    for index, message in enumerate(messages):
        if message.get("role") == "assistant":
            calls: list[ExpectedCall] = []
            for call in message.get("tool_calls") or []:
                function = call.get("function", {})
                calls.append(
                    (str(function.get("name", "")), _parse_args(function.get("arguments")))
                )
            return messages[:index], calls
    return messages, []


def _parse_args(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if isinstance(arguments, str):
        parsed = json.loads(arguments) if arguments.strip() else {}
        if isinstance(parsed, dict):
            return parsed
    raise DatasetFormatError(f"tool-call arguments must be a JSON object, got {arguments!r:.80}")


def validate_example(example: Any, *, where: str = "example") -> Example:
    """Check the shape of one example and return it.

    Raises:
        DatasetFormatError: With `where` and the problem in the message.
    """
    if not isinstance(example, dict):
        raise DatasetFormatError(f"{where}: not a JSON object")
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DatasetFormatError(f"{where}: `messages` must be a non-empty list")
    tools = example.get("tools", [])
    if not isinstance(tools, list):
        raise DatasetFormatError(f"{where}: `tools` must be a list")
    call_ids: set[str] = set()
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in (
            "system",
            "user",
            "assistant",
            "tool",
        ):
            raise DatasetFormatError(f"{where}: message {index} has no valid `role`")
        if message["role"] == "assistant":
            for call in message.get("tool_calls") or []:
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict) or not function.get("name"):
                    raise DatasetFormatError(f"{where}: message {index} has a call without a name")
                if not isinstance(function.get("arguments"), str):
                    raise DatasetFormatError(
                        f"{where}: message {index}: arguments must be a JSON string "
                        "(objects get merged into null-filled structs by columnar loaders)"
                    )
                try:
                    _parse_args(function["arguments"])
                except (ValueError, DatasetFormatError) as exc:
                    raise DatasetFormatError(f"{where}: message {index}: {exc}") from None
                call_ids.add(str(call.get("id", "")))
        elif message["role"] == "tool" and message.get("tool_call_id") not in call_ids:
            raise DatasetFormatError(
                f"{where}: message {index} answers an unknown tool_call_id "
                f"{message.get('tool_call_id')!r}"
            )
        elif message["role"] in ("user", "system") and not isinstance(message.get("content"), str):
            raise DatasetFormatError(f"{where}: message {index} needs string `content`")
    if not any(m["role"] == "assistant" for m in messages):
        raise DatasetFormatError(f"{where}: no assistant turn to learn from")
    return example


def read_jsonl(path: str | os.PathLike[str]) -> list[Example]:
    """Read and validate examples (blank lines are skipped)."""
    return list(iter_jsonl(path))


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[Example]:
    """Yield validated examples from a JSON-lines file."""
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as exc:
                raise DatasetFormatError(f"{path}:{number}: not JSON ({exc})") from None
            yield validate_example(data, where=f"{path}:{number}")


def strip_metadata(example: Mapping[str, Any]) -> Example:
    """The example without our `metadata` key (plain OpenAI fine-tuning format)."""
    return {key: value for key, value in example.items() if key != "metadata"}


def write_jsonl(
    path: str | os.PathLike[str], examples: Iterable[Mapping[str, Any]], *, metadata: bool = True
) -> int:
    """Write examples, one per line; returns how many were written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with target.open("w", encoding="utf-8") as handle:
        for example in examples:
            row = dict(example) if metadata else strip_metadata(example)
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count
