"""The tool-calling format the runtime serves models in and trains them in.

`templates/tool_chat_template.jinja` defines it: vLLM (`--chat-template`) and
the embedded llama.cpp server render it, and every adapter ships a copy. The
instructions that tell the model how to write a `<tool_call>` are set once, at
the top of that template (`tools_header`, `tools_footer`); this module reads
them from there for the Python renderers of the same format: training's
(`runtime.finetune.chat_template`) and tools rendered into the system prompt
(`runtime.prompting.text_tools`). Adapters are trained on this exact text, so
it changes only together with the template.
"""

from __future__ import annotations

import ast
import re
from importlib.resources import files

__all__ = ["TOOLS_FOOTER", "TOOLS_HEADER", "TOOL_CHAT_TEMPLATE", "WORKED_REQUESTS_HEADER"]

TOOL_CHAT_TEMPLATE = (
    files("runtime.model").joinpath("templates/tool_chat_template.jinja").read_text("utf-8")
)

# `{%- set name = "..." %}`: a double-quoted string literal, which Jinja and
# Python read alike (backslash escapes only; the text is ASCII).
_SET_RE = re.compile(r'\{%-?\s*set\s+(\w+)\s*=\s*("(?:[^"\\]|\\.)*")\s*-?%\}')


def _template_strings(template: str) -> dict[str, str]:
    return {name: ast.literal_eval(literal) for name, literal in _SET_RE.findall(template)}


_STRINGS = _template_strings(TOOL_CHAT_TEMPLATE)
#: The system-turn text before the tool signatures (ends with `<tools>`).
TOOLS_HEADER: str = _STRINGS["tools_header"]
#: The text after them: `</tools>` and how to write a `<tool_call>`.
TOOLS_FOOTER: str = _STRINGS["tools_footer"]
#: The first line of the user turn of worked requests shown before a request
#: (`runtime.prompting.similar_requests`); adapters trained with them know it.
WORKED_REQUESTS_HEADER = "Requests like this one, and what each needed:"
