"""How an agent asks its model, turn by turn: one builder for `Agent` and the evaluation.

`RequestBuilder` takes the prompt configuration and the gate's tool schemas
and builds what each turn sends: the opening messages (system prompt,
examples, retrieved context, the conversation), then, from the history, the
messages, `tools` and sampling settings of the next request; it also reads the
reply (think-first reasoning out). `Agent` uses it for every turn and
`runtime.finetune.eval_variants` for every item, so an evaluation measures the
requests an agent actually sends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from runtime.model import compat
from runtime.model.client import ModelTurn
from runtime.model.settings import SamplingSettings
from runtime.model.transport import EncodedTools
from runtime.prompting.compose import BoundPrompt, ContextProvider, Prompt, ReadTurn
from runtime.prompting.think import ThinkFirst

__all__ = ["ModelRequest", "RequestBuilder"]


@dataclasses.dataclass(frozen=True, slots=True)
class ModelRequest:
    """One turn's request: the arguments of `ModelClient.complete`."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    settings: SamplingSettings


class RequestBuilder:
    """A `Prompt` bound to one set of tools, building each turn's request.

    Args:
        prompt: How requests are composed (system prompt, examples,
            think-first, tools in the prompt).
        schemas: The tools' full OpenAI schemas, as the gate validates them.
            The model is shown them without grammar-hostile length bounds
            (`compat.model_facing_tools`); few-shot example calls are checked
            against the full ones.

    Raises:
        PromptError: An example calls a tool wrongly, or the template cannot
            be rendered (at construction, not at the first run).
    """

    def __init__(self, prompt: Prompt, schemas: Sequence[Mapping[str, Any]]) -> None:
        # Encoded once for every request that sends them (see EncodedTools).
        self.tools = EncodedTools(compat.model_facing_tools(schemas))
        self.bound: BoundPrompt = prompt.bind(self.tools, validate_with=schemas)

    @property
    def think(self) -> ThinkFirst | None:
        """The think-first settings, when the prompt asks for reasoning."""
        return self.bound.think

    async def opening(
        self,
        conversation: Sequence[Mapping[str, Any]],
        retrieval: ContextProvider | None = None,
    ) -> list[dict[str, Any]]:
        """The history a run starts from: system prompt, examples, context, `conversation`.

        `retrieval` is asked with the conversation's first user message.

        Raises:
            Exception: Whatever `retrieval` raises; the caller decides what a
                failing retriever means.
        """
        context: list[dict[str, Any]] = []
        if retrieval is not None:
            context = await retrieval.amessages_for(_first_user_text(conversation))
        return self.bound.compose(conversation, context)

    def next(
        self,
        history: Sequence[Mapping[str, Any]],
        settings: SamplingSettings,
        answer_settings: SamplingSettings | None = None,
    ) -> ModelRequest:
        """The request for the turn after `history`.

        `answer_settings` (default `settings`) apply when the history ends with
        tool results: that turn is the answer, not a choice of calls.
        """
        after_tools = bool(history) and history[-1].get("role") == "tool"
        chosen = answer_settings if after_tools and answer_settings is not None else settings
        messages, tools = self.bound.request(history, self.tools)
        return ModelRequest(messages, tools, chosen)

    def read(self, turn: ModelTurn) -> ReadTurn:
        """The reply with think-first reasoning taken out."""
        return self.bound.read(turn)


def _first_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in messages:
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""
