"""Worked requests like the one at hand, shown to the model before it answers.

A small model copies far better than it generalises: shown that "switch off
the office lights" needed `set_lights {"room": "office", "on": false}`, it
answers "kitchen lights off please" in kind. `SimilarRequests` keeps a bank
of requests with the calls they needed (or none: answered directly), finds
the ones closest to a new request by TF-IDF cosine over words and character
trigrams (no model, a few milliseconds for thousands of entries), and renders
them as one message placed just before the request. It is a
`ContextProvider`, so `Agent(..., retrieval=...)` and `agentrt eval` use it
like retrieved passages.

The bank usually comes from `dataset synth` on the same tools
(`runtime.finetune.similar.bank_for_tools`); an adapter trained with these
messages (`agentrt finetune --similar-requests K`) should be served with them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runtime.model.tool_format import WORKED_REQUESTS_HEADER

__all__ = ["HEADER", "Shown", "SimilarRequests", "first_user_text", "shown_from_example"]

HEADER = WORKED_REQUESTS_HEADER
_WORD = re.compile(r"[a-z0-9]+(?:['.@-][a-z0-9]+)*")


@dataclasses.dataclass(frozen=True, slots=True)
class Shown:
    """One worked request: its text and the calls it needed ((name, arguments JSON), ...)."""

    text: str
    calls: tuple[tuple[str, str], ...]

    def render(self) -> str:
        request = json.dumps(self.text, ensure_ascii=False)
        if not self.calls:
            return f"{request} -> no tool: answer directly"
        return f"{request} -> " + "; ".join(f"{name} {arguments}" for name, arguments in self.calls)


def first_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The first user message's text ("" when there is none)."""
    for message in messages:
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else ""
    return ""


def shown_from_example(example: Mapping[str, Any]) -> Shown | None:
    """The request and first-turn calls of a training-format example, or None
    when it has no user request."""
    messages = example.get("messages") or []
    text = first_user_text(messages)
    if not text.strip():
        return None
    calls: list[tuple[str, str]] = []
    started = False
    for message in messages:
        if message.get("role") == "user":
            if started:
                break
            started = True
            continue
        if started and message.get("role") == "assistant":
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                arguments = function.get("arguments", "{}")
                if not isinstance(arguments, str):
                    arguments = json.dumps(arguments, ensure_ascii=False)
                calls.append((str(function.get("name", "")), arguments))
            break
    return Shown(text, tuple(calls))


def _features(text: str) -> Counter[str]:
    low = text.lower()
    features: Counter[str] = Counter()
    for word in _WORD.findall(low):
        stem = word[:-1] if len(word) > 3 and word.endswith("s") else word
        features["w:" + stem] += 1
    squeezed = " " + " ".join(_WORD.findall(low)) + " "
    for index in range(len(squeezed) - 2):
        features["c:" + squeezed[index : index + 3]] += 1
    return features


class SimilarRequests:
    """A bank of worked requests and the nearest ones to a new request.

    Args:
        bank: The worked requests.
        k: How many to show.
    """

    def __init__(self, bank: Iterable[Shown], *, k: int = 2) -> None:
        if k < 1:
            raise ValueError("k must be at least 1")
        self.k = k
        self.bank: tuple[Shown, ...] = tuple(bank)
        counts = [_features(shown.text) for shown in self.bank]
        documents: Counter[str] = Counter()
        for features in counts:
            documents.update(features.keys())
        total = len(counts) + 1
        self._idf = {key: math.log(total / (1 + df)) + 1.0 for key, df in documents.items()}
        self._vectors = [self._vector(features) for features in counts]

    @classmethod
    def from_examples(cls, examples: Iterable[Mapping[str, Any]], *, k: int = 2) -> SimilarRequests:
        """A bank from training-format examples (e.g. `dataset synth` output)."""
        shown = (shown_from_example(example) for example in examples)
        return cls((s for s in shown if s is not None), k=k)

    def _vector(self, features: Mapping[str, int]) -> dict[str, float]:
        vector = {
            key: (1.0 + math.log(count)) * self._idf.get(key, 1.0)
            for key, count in features.items()
        }
        norm = math.sqrt(sum(v * v for v in vector.values())) or 1.0
        return {key: value / norm for key, value in vector.items()}

    def nearest(
        self, text: str, k: int | None = None, *, exclude: str | None = None
    ) -> list[Shown]:
        """The `k` bank entries most like `text`, best first. Entries whose text
        is `exclude` are skipped (training on the bank: never show the answer)."""
        query = self._vector(_features(text))
        skip = exclude.strip().lower() if exclude is not None else None
        scored = []
        for index, vector in enumerate(self._vectors):
            if skip is not None and self.bank[index].text.strip().lower() == skip:
                continue
            small, large = (query, vector) if len(query) < len(vector) else (vector, query)
            score = sum(value * large.get(key, 0.0) for key, value in small.items())
            scored.append((score, index))
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        return [self.bank[index] for _, index in scored[: k or self.k]]

    def message_for(self, text: str, *, exclude: str | None = None) -> dict[str, Any] | None:
        """The message to put before the request, or None (empty bank)."""
        shown = self.nearest(text, exclude=exclude)
        if not shown or not text.strip():
            return None
        lines = "\n".join(s.render() for s in shown)
        # A user turn, not a system one: chat templates fold a leading system
        # message into the tools block, which would make every request's
        # prompt prefix different (no shared-prefix training, no KV reuse).
        return {"role": "user", "content": f"{HEADER}\n{lines}"}

    def messages_for(self, prompt: str) -> list[dict[str, Any]]:
        message = self.message_for(prompt)
        return [message] if message else []

    async def amessages_for(self, prompt: str) -> list[dict[str, Any]]:
        return self.messages_for(prompt)
