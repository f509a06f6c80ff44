"""Think-first prompting: the model reasons in tags before it acts.

The instruction asks the model to write its reasoning inside
`<think>...</think>` before answering or calling a tool. `split_reasoning`
takes that reasoning out of a reply, so it never reaches the final answer,
the history sent back to the model, or the tool-call parser (a `<tool_call>`
drafted inside the reasoning is not a call). A call whose arguments still
contain the tags is rejected by the agent before the gate runs it.
"""

from __future__ import annotations

import dataclasses
import re

__all__ = ["DEFAULT_THINK_INSTRUCTION", "ThinkFirst", "split_reasoning"]

_CALL_OPEN, _CALL_CLOSE = "<tool_call>", "</tool_call>"

DEFAULT_THINK_INSTRUCTION = (
    "Before every reply, think step by step inside <think></think>: what the user asks, "
    "whether a tool is needed, and which arguments it takes. Then, after </think>, either "
    "call the tool or answer. Keep all reasoning inside the tags: never put it in tool "
    "arguments or in the answer."
)


@dataclasses.dataclass(frozen=True, slots=True)
class ThinkFirst:
    """Ask for reasoning before each reply and keep it out of the answer.

    Attributes:
        instruction: Added to the system prompt; it must name the tag.
        tag: The reasoning tag (`think` gives `<think>...</think>`).
    """

    instruction: str = DEFAULT_THINK_INSTRUCTION
    tag: str = "think"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,31}", self.tag):
            raise ValueError(f"think tag {self.tag!r} must be a short XML-like name")
        if f"<{self.tag}>" not in self.instruction:
            raise ValueError(f"the think-first instruction must mention <{self.tag}>")

    def split(self, text: str) -> tuple[str, str]:
        """`(visible text, reasoning)`; see `split_reasoning`."""
        return split_reasoning(text, self.tag)

    def leaks_into(self, text: str) -> bool:
        """True when `text` (e.g. tool arguments) carries the reasoning tags."""
        return f"<{self.tag}>" in text or f"</{self.tag}>" in text


def split_reasoning(text: str, tag: str = "think") -> tuple[str, str]:
    """Separate `<tag>...</tag>` reasoning from the rest of a reply.

    Every closed block is reasoning, `<tool_call>` blocks inside it included
    (drafts, not calls). An opening tag that is never closed (the reply ran
    out of tokens) makes the rest reasoning. A closing tag with no opening tag
    (templates that open the block themselves) makes everything before it
    reasoning. Tags inside a `<tool_call>` block are left where they are, so
    the agent sees them in the arguments and rejects the call rather than
    running an edited one.

    Returns:
        The visible text, stripped, and the reasoning blocks joined by blank lines.
    """
    opening, closing = f"<{tag}>", f"</{tag}>"
    reasoning: list[str] = []
    visible: list[str] = []
    first_close = text.find(closing)
    earliest_other = min(
        (i for i in (text.find(opening), text.find(_CALL_OPEN)) if i != -1), default=-1
    )
    position = 0
    if first_close != -1 and (earliest_other == -1 or first_close < earliest_other):
        reasoning.append(text[:first_close])
        position = first_close + len(closing)
    while position < len(text):
        think_at = text.find(opening, position)
        call_at = text.find(_CALL_OPEN, position)
        if think_at == -1 and call_at == -1:
            visible.append(text[position:])
            break
        if call_at != -1 and (think_at == -1 or call_at < think_at):
            end = text.find(_CALL_CLOSE, call_at)
            end = len(text) if end == -1 else end + len(_CALL_CLOSE)
            visible.append(text[position:end])
            position = end
            continue
        visible.append(text[position:think_at])
        end = text.find(closing, think_at + len(opening))
        if end == -1:
            reasoning.append(text[think_at + len(opening) :])
            break
        reasoning.append(text[think_at + len(opening) : end])
        position = end + len(closing)
    kept = "".join(visible)
    return kept.strip(), "\n\n".join(part.strip() for part in reasoning if part.strip())
