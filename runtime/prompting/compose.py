"""What the model sees: system prompt, few-shot examples, context, the request.

`Prompt` is the user-facing configuration; `Prompt.bind(tools)` checks it
against the agent's tool schemas (a few-shot call to a missing tool, or with
invalid arguments, fails here, at construction) and pre-renders the system
text. The bound prompt then builds each run's opening messages, adapts the
history for a request (tools rendered in the prompt, when asked), and reads
replies (taking think-first reasoning out).

Order of the opening messages:

    system   (template or text, + think-first instruction, + tool block)
    examples (few-shot conversations, calls and results included)
    context  (e.g. retrieved passages with citations)
    user     (the request)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from runtime.model.client import ModelTurn
from runtime.model.transport import EncodedTools
from runtime.prompting.examples import FewShotExamples, load_examples
from runtime.prompting.template import PromptTemplate
from runtime.prompting.text_tools import render_tools_block, to_text_protocol
from runtime.prompting.think import ThinkFirst

__all__ = ["BoundPrompt", "ContextProvider", "Prompt", "ReadTurn"]


class ContextProvider(Protocol):
    """Supplies messages to insert before the user's request (e.g. retrieval)."""

    async def amessages_for(self, prompt: str) -> list[dict[str, Any]]:
        """Messages for this request; [] when there is nothing relevant."""
        ...


@dataclasses.dataclass(frozen=True)
class Prompt:
    """How an agent composes its requests.

    Attributes:
        system: A `PromptTemplate` (rendered with `variables` and the tool
            names), a literal system prompt, or `None` for none.
        examples: Few-shot conversations: a `FewShotExamples`, a file path, a
            list of conversations, or one flat list of messages.
        think_first: Ask for reasoning in `<think>` tags before each reply and
            keep it out of answers, history and tool arguments (`True` or a
            `ThinkFirst` for another instruction or tag).
        tools_in_prompt: Render the tool schemas into the system prompt and
            send no `tools` field, for servers whose chat template ignores it.
            `tool_choice` cannot be enforced in this mode and is not sent.
        variables: Values for the template's `$name` variables.
    """

    system: PromptTemplate | str | None = None
    examples: FewShotExamples | str | Path | Sequence[Any] = ()
    think_first: ThinkFirst | bool = False
    tools_in_prompt: bool = False
    variables: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def bind(
        self,
        tools: Sequence[Mapping[str, Any]],
        *,
        validate_with: Sequence[Mapping[str, Any]] | None = None,
    ) -> BoundPrompt:
        """Validate against the tool schemas and render the fixed parts.

        Args:
            tools: The tools as the model sees them (rendered in the prompt).
            validate_with: Full schemas to check example calls against (default
                `tools`); the agent passes the gate's schemas here.

        Raises:
            PromptError: An example is malformed or calls a tool wrongly, or
                the template cannot be rendered.
        """
        examples = load_examples(self.examples)
        examples.check_tools(tools if validate_with is None else validate_with)
        think = self.think_first if isinstance(self.think_first, ThinkFirst) else None
        if self.think_first is True:
            think = ThinkFirst()
        names = [tool["function"]["name"] for tool in tools]
        if isinstance(self.system, PromptTemplate):
            base = self.system.render(self.variables, tool_names=names)
        else:
            base = self.system or ""
        parts = [base]
        if think is not None:
            parts.append(think.instruction)
        if self.tools_in_prompt and tools:
            parts.append(render_tools_block(tools))
        system_text = "\n\n".join(part for part in parts if part.strip()) or None
        return BoundPrompt(
            system_text=system_text,
            examples=examples.messages(),
            think=think,
            tools_in_prompt=self.tools_in_prompt,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ReadTurn:
    """A reply after the prompt's post-processing.

    Attributes:
        turn: The reply with reasoning removed from its text (and calls drafted
            inside the reasoning dropped).
        reasoning: The think-first reasoning, "" when none.
    """

    turn: ModelTurn
    reasoning: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class BoundPrompt:
    """A `Prompt` checked against one set of tools, ready to build requests."""

    system_text: str | None
    examples: list[dict[str, Any]]
    think: ThinkFirst | None
    tools_in_prompt: bool

    def opening(
        self, prompt: str, context: Sequence[Mapping[str, Any]] = ()
    ) -> list[dict[str, Any]]:
        """The messages a run starts with."""
        return self.compose([{"role": "user", "content": prompt}], context)

    def compose(
        self, conversation: Sequence[Mapping[str, Any]], context: Sequence[Mapping[str, Any]] = ()
    ) -> list[dict[str, Any]]:
        """System prompt, examples and context, then `conversation` (its own
        system messages, if any, are kept after ours)."""
        messages: list[dict[str, Any]] = []
        if self.system_text:
            messages.append({"role": "system", "content": self.system_text})
        messages.extend(dict(message) for message in self.examples)
        messages.extend(dict(message) for message in context)
        messages.extend(dict(message) for message in conversation)
        return messages

    def request(
        self, history: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The messages and `tools` to send for the next turn.

        New lists of the same message and tool dicts, not copies of each one
        per turn: a model client must not change them (the history is the
        run's own), and `OpenAICompatibleClient` copies only what it repairs.
        `EncodedTools` stay `EncodedTools`, their JSON encoded once.
        """
        if self.tools_in_prompt:
            return to_text_protocol(history), []
        messages = [m if type(m) is dict else dict(m) for m in history]
        if isinstance(tools, EncodedTools):
            return messages, tools.share()
        return messages, [t if type(t) is dict else dict(t) for t in tools]

    def read(self, turn: ModelTurn) -> ReadTurn:
        """Take think-first reasoning out of a reply."""
        if self.think is None:
            return ReadTurn(turn)
        visible, reasoning = self.think.split(turn.content or turn.text)
        if turn.tool_calls and not turn.calls_from_text:
            # The server's own calls stand; only their text loses the reasoning.
            read, native = self.think.split(turn.text)[0], turn.tool_calls
        else:
            # Calls come from the text that remains: a <tool_call> drafted
            # inside the reasoning is not a call.
            read, native = visible, ()
        cleaned = ModelTurn.from_reply(
            turn.content,
            native,
            turn.finish_reason,
            usage=turn.usage,
            model=turn.model,
            read=read,
        )
        return ReadTurn(cleaned, reasoning)
