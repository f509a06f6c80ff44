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

    Every closed block is reasoning. An opening tag that is never closed (the
    reply ran out of tokens) makes the rest reasoning. A closing tag with no
    opening tag (templates that open the block themselves) makes everything
    before it reasoning.

    Returns:
        The visible text, stripped, and the reasoning blocks joined by blank lines.
    """
    opening, closing = f"<{tag}>", f"</{tag}>"
    reasoning: list[str] = []
    visible: list[str] = []
    rest = text
    first_close = rest.find(closing)
    first_open = rest.find(opening)
    if first_close != -1 and (first_open == -1 or first_close < first_open):
        reasoning.append(rest[:first_close])
        rest = rest[first_close + len(closing) :]
    while True:
        start = rest.find(opening)
        if start == -1:
            visible.append(rest)
            break
        visible.append(rest[:start])
        end = rest.find(closing, start + len(opening))
        if end == -1:
            reasoning.append(rest[start + len(opening) :])
            break
        reasoning.append(rest[start + len(opening) : end])
        rest = rest[end + len(closing) :]
    kept = "".join(visible).replace(closing, "")
    return kept.strip(), "\n\n".join(part.strip() for part in reasoning if part.strip())
