"""The chat format tool calls are taught in: the runtime's own tool template.

SmolLM2's template ignores `tools`, so the runtime serves every model with
`runtime/model/templates/tool_chat_template.jinja` (the layout of Qwen2.5's
template, which vLLM's `hermes` tool parser reads): the tools go into the
system turn inside `<tools>`, a call is
`<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>` in the
assistant turn, and tool results come back in a user turn inside
`<tool_response>`. Training uses the same template, so an adapter sees at
serving time exactly the prompts it was trained on.

Two renderers of that one format, kept equal by
tests/unit/test_finetune_chat_template.py:

- `CHAT_TEMPLATE`, the Jinja text (saved with every adapter as
  `chat_template.jinja` and in `tokenizer_config.json`, for vLLM's
  `--chat-template` and the llama.cpp server).
- `render_segments`, the Python renderer training uses: it also says which
  characters are the assistant's (the only ones the loss is computed on).

The tool instructions themselves are the template's own (`runtime.model.tool_format`
reads them from it), so both renderers say the same words by construction.

`tojson` is `json.dumps(x, ensure_ascii=False)` in transformers and in
llama-cpp-python 0.3.x; `_dumps` below is the same call.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from runtime.model.tool_format import TOOL_CHAT_TEMPLATE, TOOLS_FOOTER, TOOLS_HEADER

__all__ = [
    "BOS_TOKEN",
    "CHAT_TEMPLATE",
    "EOS_TOKEN",
    "Segment",
    "render_prompt",
    "render_segments",
    "render_text",
]

BOS_TOKEN = "<|im_start|>"
EOS_TOKEN = "<|im_end|>"
CHAT_TEMPLATE = TOOL_CHAT_TEMPLATE


@dataclasses.dataclass(frozen=True, slots=True)
class Segment:
    """A run of prompt text; `trainable` marks the assistant's own tokens."""

    text: str
    trainable: bool = False


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _function(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    inner = tool.get("function")
    return inner if isinstance(inner, Mapping) else tool


def _tools_block(system: str | None, tools: Sequence[Mapping[str, Any]]) -> str:
    parts = [f"{BOS_TOKEN}system\n", f"{system}\n\n" if system is not None else "", TOOLS_HEADER]
    parts.extend(f"\n{_dumps(tool)}" for tool in tools)
    parts.append(f"{TOOLS_FOOTER}{EOS_TOKEN}\n")
    return "".join(parts)


def _call_text(call: Mapping[str, Any]) -> str:
    fn = _function(call)
    arguments = fn.get("arguments", {})
    args_text = arguments if isinstance(arguments, str) else _dumps(arguments)
    return f'<tool_call>\n{{"name": "{fn["name"]}", "arguments": {args_text}}}\n</tool_call>'


def assistant_body(message: Mapping[str, Any]) -> str:
    """The text of an assistant turn as the model writes it (without the ChatML markers)."""
    content = message.get("content") or ""
    calls = message.get("tool_calls") or []
    if not calls:
        return content
    parts = [content] if content else []
    parts.extend(_call_text(call) for call in calls)
    return "\n".join(parts)


def render_segments(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] = (),
    *,
    add_generation_prompt: bool = False,
) -> list[Segment]:
    """Render a conversation; assistant bodies and their end marker are trainable.

    Args:
        messages: OpenAI-style messages (`system`, `user`, `assistant` with
            optional `tool_calls`, `tool`).
        tools: OpenAI `tools` entries.
        add_generation_prompt: End with an open assistant turn.

    Returns:
        Segments whose texts concatenate to exactly what `CHAT_TEMPLATE` renders.
    """
    segments: list[Segment] = []
    has_system = bool(messages) and messages[0].get("role") == "system"
    if tools:
        system = str(messages[0].get("content") or "") if has_system else None
        segments.append(Segment(_tools_block(system, tools)))
    elif has_system:
        segments.append(
            Segment(f"{BOS_TOKEN}system\n{messages[0].get('content') or ''}{EOS_TOKEN}\n")
        )
    for index, message in enumerate(messages):
        role = message.get("role")
        content = message.get("content") or ""
        if role == "user" or (role == "system" and index > 0):
            segments.append(Segment(f"{BOS_TOKEN}{role}\n{content}{EOS_TOKEN}\n"))
        elif role == "assistant":
            segments.append(Segment(f"{BOS_TOKEN}assistant\n"))
            segments.append(Segment(assistant_body(message) + EOS_TOKEN, trainable=True))
            segments.append(Segment("\n"))
        elif role == "tool":
            first = index == 0 or messages[index - 1].get("role") != "tool"
            last = index == len(messages) - 1 or messages[index + 1].get("role") != "tool"
            text = f"\n<tool_response>\n{content}\n</tool_response>"
            segments.append(
                Segment(
                    (f"{BOS_TOKEN}user" if first else "")
                    + text
                    + (f"{EOS_TOKEN}\n" if last else "")
                )
            )
    if add_generation_prompt:
        segments.append(Segment(f"{BOS_TOKEN}assistant\n"))
    return segments


def render_text(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] = (),
    *,
    add_generation_prompt: bool = False,
) -> str:
    """The whole conversation as one prompt string."""
    segments = render_segments(messages, tools, add_generation_prompt=add_generation_prompt)
    return "".join(segment.text for segment in segments)


def render_prompt(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] = ()
) -> str:
    """The prompt a server sends the model to produce the next assistant turn."""
    return render_text(messages, tools, add_generation_prompt=True)
