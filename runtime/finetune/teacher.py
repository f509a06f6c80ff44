"""An optional teacher: a larger model that rewords synthesised requests.

`dataset synth --teacher-url URL --teacher-model NAME` sends each request
that carries a call (and some that don't) to any OpenAI-compatible server and
asks for the same request in another person's words. A paraphrase is kept
only if it still holds every value the call carries (each string, number and
list item, written as it was in the original, and every run of digits the
original had) and is a plausible single request; otherwise the original
stays. The call is never changed, so a paraphrase can only change wording.

A teacher that is down, slow or answers junk never empties the dataset: after
`max_failures` transport errors in a row it is given up on and the rest of
the requests keep their synthesised wording; the report says how many were
kept, rejected and why.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runtime.finetune import vocabulary as vocab
from runtime.finetune.dataset_format import Example

__all__ = ["Teacher", "TeacherReport", "TeacherUnavailable", "paraphrase_examples", "values_kept"]

INSTRUCTION = (
    "Rewrite the user's request the way a different person might write it: change the "
    "wording, the order and the tone, keep it one message. Keep every name, number, date, "
    "code, email address and quoted text exactly as written. Do not answer the request. "
    "Reply with the rewritten request only."
)


class TeacherUnavailable(RuntimeError):
    """The teacher server cannot be reached or keeps failing."""


@dataclasses.dataclass(slots=True)
class TeacherReport:
    """What the teacher did to a dataset."""

    asked: int = 0
    kept: int = 0
    rejected: dict[str, int] = dataclasses.field(default_factory=dict)
    errors: int = 0
    gave_up: str | None = None

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Teacher:
    """A paraphrasing model behind an OpenAI-compatible endpoint.

    Args:
        base_url: e.g. `http://gpu-host:8000/v1`.
        model: The served model's name.
        api_key: Sent as a bearer token (most local servers ignore it).
        timeout_s: Per request.
        temperature: Sampling temperature (variety).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str = "not-needed",
        timeout_s: float = 30.0,
        temperature: float = 0.9,
    ) -> None:
        from openai import OpenAI

        self.model = model
        self.temperature = temperature
        self._client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)

    def paraphrase(self, request: str) -> str:
        """The teacher's rewording of `request` (raises on transport errors)."""
        import openai

        try:
            reply = self._client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": INSTRUCTION},
                    {"role": "user", "content": request},
                ],
                temperature=self.temperature,
                max_tokens=200,
            )
        except openai.OpenAIError as exc:
            raise TeacherUnavailable(f"{type(exc).__name__}: {exc}") from None
        except (ValueError, json.JSONDecodeError, AttributeError) as exc:
            raise TeacherUnavailable(f"the teacher sent a malformed reply ({exc})") from None
        choices = getattr(reply, "choices", None) or []
        content = choices[0].message.content if choices and choices[0].message else None
        if not isinstance(content, str):
            raise TeacherUnavailable("the teacher sent a reply without text")
        return content


def _flatten(value: Any) -> Iterable[Any]:
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _flatten(item)
    elif isinstance(value, list):
        for item in value:
            yield from _flatten(item)
    else:
        yield value


def _present(value: Any, text: str) -> bool:
    folded = text.casefold()
    if isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        forms = {str(value), f"{value:,}"}
        if isinstance(value, float) and value.is_integer():
            forms |= {str(int(value)), f"{int(value):,}"}
        if isinstance(value, int) and 0 <= value < len(vocab.NUMBER_WORDS):
            forms.add(vocab.NUMBER_WORDS[value])
        return any(re.search(rf"(?<![\w.]){re.escape(f)}(?![\w])", folded) for f in forms)
    return str(value).casefold() in folded


def values_kept(original: str, paraphrase: str, arguments: Sequence[Mapping[str, Any]]) -> bool:
    """True when every value the original request shows is still in the paraphrase."""
    for call in arguments:
        for value in _flatten(call):
            if _present(value, original) and not _present(value, paraphrase):
                return False
    digits = set(re.findall(r"\d+", original))
    return digits <= set(re.findall(r"\d+", paraphrase))


def _clean(text: str) -> str:
    text = text.strip()
    text = re.sub(r"^(?:rewritten request|request|paraphrase)\s*:\s*", "", text, flags=re.I)
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def paraphrase_examples(
    examples: list[Example],
    teacher: Teacher,
    *,
    share: float = 0.5,
    seed: int = 0,
    max_failures: int = 5,
) -> TeacherReport:
    """Reword a share of the examples' first requests in place; returns what happened."""
    rng = random.Random(seed)
    report = TeacherReport()
    failures = 0
    for example in examples:
        if rng.random() >= share:
            continue
        messages = example["messages"]
        first = next((m for m in messages if m.get("role") == "user"), None)
        if first is None:
            continue
        original = str(first.get("content") or "")
        calls = [
            json.loads(call["function"]["arguments"])
            for message in messages
            if message.get("role") == "assistant"
            for call in message.get("tool_calls") or []
        ][:2]
        report.asked += 1
        try:
            reply = teacher.paraphrase(original)
        except TeacherUnavailable as exc:
            report.errors += 1
            failures += 1
            if failures >= max_failures:
                report.gave_up = str(exc)
                break
            continue
        failures = 0
        text = _clean(reply)
        if not text or len(text) > 3 * len(original) + 80 or "\n\n" in text:
            report.reject("not one request")
        elif "<tool_call>" in text or ("{" in text and "{" not in original):
            report.reject("markup or JSON")
        elif not values_kept(original, text, calls):
            report.reject("a value went missing")
        elif text.casefold() == original.casefold():
            report.reject("unchanged")
        else:
            first["content"] = text
            example.setdefault("metadata", {})["teacher"] = True
            report.kept += 1
    return report
