"""Tool calling through the prompt, for servers whose chat template ignores `tools`.

Some servers (a plain chat template, a model without tool support in its
template) drop the `tools` field and reject or mangle `tool` messages. In this
mode the agent renders the schemas into the system prompt in the Hermes /
Qwen `<tool_call>` convention that `runtime.model.compat` already parses, sends
no `tools`, and turns the structured history into plain text turns: calls as
`<tool_call>` blocks in the assistant's text, results as `<tool_response>`
blocks in a user turn. The runtime's own history stays structured.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from runtime.model.tool_format import TOOLS_FOOTER, TOOLS_HEADER

__all__ = ["render_tools_block", "to_text_protocol"]


def render_tools_block(tools: Sequence[Mapping[str, Any]]) -> str:
    """The tool signatures and calling convention, for the system prompt.

    The same words the runtime's chat template puts in the system turn
    (`runtime.model.tool_format`), so a model tuned on that template reads
    tools given in the prompt the way it was trained to.
    """
    signatures = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
    return f"{TOOLS_HEADER}\n{signatures}{TOOLS_FOOTER}"


def to_text_protocol(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rewrite a structured history as plain system/user/assistant text turns.

    Consecutive tool results become one user turn, in call order.
    """
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            out.append({"role": "assistant", "content": _assistant_text(message)})
        elif role == "tool":
            block = f"<tool_response>\n{message.get('content', '')}\n</tool_response>"
            previous = out[-1] if out else None
            if previous is not None and previous.get("_tool_results"):
                previous["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "_tool_results": True})
        else:
            out.append({"role": role, "content": message.get("content") or ""})
    for item in out:
        item.pop("_tool_results", None)
    return out


def _assistant_text(message: Mapping[str, Any]) -> str:
    parts = [message.get("content") or ""]
    for call in message.get("tool_calls") or ():
        function = call.get("function", {})
        raw = function.get("arguments", "{}")
        try:
            arguments: Any = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            arguments = raw  # the malformed text the model wrote, kept as it was
        payload = {"name": function.get("name", ""), "arguments": arguments}
        parts.append(f"<tool_call>\n{json.dumps(payload, ensure_ascii=False)}\n</tool_call>")
    return "\n".join(part for part in parts if part)
