"""Synthetic training examples for every tool of a module, seeded and reproducible.

For each tool the synthesizer writes single-call requests, whole trajectories
(request -> call -> tool result -> final answer, so the model learns to answer
after a result instead of echoing it or calling again), and requests that
need two calls in one turn; for the module as a whole it adds requests no
tool fits, answered in plain text (so the model learns when *not* to call).

Arguments come from the tool's phrasebook entry when there is one
(`runtime.finetune.builtin_phrasings` has entries for the built-in tools) and
otherwise from its JSON Schema and docstring: enums, ranges, formats and
parameter-name hints give realistic values, and the request names every
argument the call carries, so the model never learns to invent one.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

from runtime.finetune.dataset_format import Example, assistant_call_message
from runtime.finetune.phrasebook import (
    Case,
    Phrasebook,
    ToolPhrases,
    sample_schema_value,
    template_slots,
)
from runtime.tools import Tool, ToolRegistry

__all__ = ["GENERIC_NO_TOOL", "SynthConfig", "SynthesisError", "Synthesizer", "synthesize"]


class SynthesisError(ValueError):
    """A phrasebook entry cannot produce valid examples; the message says which."""


@dataclasses.dataclass(frozen=True, slots=True)
class SynthConfig:
    """How many examples of each kind to write.

    Attributes:
        per_tool: Single-call examples per tool.
        trajectory_ratio: Trajectories per tool, as a share of `per_tool`.
        parallel_ratio: Two-call examples, as a share of all single-call ones.
        no_tool_share: Share of the whole dataset that needs no call.
        optional_rate: Chance that a schema-sampled optional argument is used.
        seed: Same seed, same module, same phrasebook: same examples.
    """

    per_tool: int = 40
    trajectory_ratio: float = 0.35
    parallel_ratio: float = 0.12
    no_tool_share: float = 0.22
    optional_rate: float = 0.35
    seed: int = 0


GENERIC_JOINERS = [
    "{a}. Also, {b}.",
    "{a}, and {b}.",
    "Two things: {a}; {b}.",
    "{a}. Then {b}.",
    "Please {a_lc}, and also {b}.",
]
GENERIC_REQUESTS = [
    "{Summary}: {mentions}.",
    "Please {summary}. {Mentions}.",
    "Can you {summary}? Use {mentions}.",
    "I need to {summary} with {mentions}.",
    "{Mentions} - {summary}, please.",
]
GENERIC_ANSWERS = [
    "Done. The result: {result}",
    "Here is what I got: {result}",
    "The tool returned {result}.",
]
# Requests that no ordinary tool module can serve; builtin_phrasings has more.
GENERIC_NO_TOOL: list[tuple[str, str]] = [
    (
        "Write a haiku about autumn leaves.",
        "Red leaves drift and fall,\nwhispering to the cold ground:\nsummer says goodbye.",
    ),
    ("Tell me a joke.", "Why did the developer go broke? Because he used up all his cache."),
    ("Hi! How are you today?", "I'm doing well, thanks for asking. How can I help you?"),
    (
        "What is the capital of France?",
        "The capital of France is Paris.",
    ),
    ("Thanks, that's all for now.", "You're welcome! Let me know if you need anything else."),
    (
        "Give me a synonym for happy.",
        "A few synonyms for happy: cheerful, glad, content, joyful.",
    ),
]


def _strip_end(text: str) -> str:
    return text.rstrip().rstrip(".?!").rstrip()


def _lower_first(text: str) -> str:
    if len(text) > 1 and text[0].isupper() and not text[1].isupper() and not text.startswith("I "):
        return text[0].lower() + text[1:]
    return text


def _summary(tool: Tool) -> str:
    first = re.split(r"(?<=[.!?])\s", tool.description.strip(), maxsplit=1)[0]
    first = _strip_end(first) or tool.name.replace("_", " ")
    return _lower_first(first)


def _result_text(result: Any) -> str:
    return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)


class Synthesizer:
    """Writes examples for one tool registry.

    Args:
        registry: The tools (all of them go into every example's `tools`).
        phrasebook: Wording and samplers; tools without an entry use their schema.
        config: Counts, mix and seed.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        phrasebook: Phrasebook | None = None,
        config: SynthConfig | None = None,
    ) -> None:
        self.registry = registry
        self.phrasebook = phrasebook or Phrasebook()
        self.config = config or SynthConfig()
        self.rng = random.Random(self.config.seed)
        self.tools = list(registry)
        if not self.tools:
            raise SynthesisError("the module defines no tools to synthesise examples for")
        self.schemas = registry.openai_schemas()
        for tool in self.tools:
            self._check_phrases(tool)

    # -- cases ---------------------------------------------------------------

    def _phrases(self, tool: Tool) -> ToolPhrases | None:
        return self.phrasebook.tools.get(tool.name)

    def _check_phrases(self, tool: Tool) -> None:
        phrases = self._phrases(tool)
        if phrases is None or not phrases.requests:
            return
        required = set(tool.parameters.get("required", []))
        probe = random.Random(0)
        for _ in range(20):
            case = self.sample(tool, probe)
            missing = required - set(case.arguments)
            if missing:
                raise SynthesisError(f"{tool.name}: the sampler leaves out {sorted(missing)}")

    def sample(self, tool: Tool, rng: random.Random | None = None) -> Case:
        """Draw arguments (and their words) for one call of `tool`."""
        rng = rng or self.rng
        phrases = self._phrases(tool)
        if phrases is not None and phrases.sample is not None:
            return phrases.sample(rng)
        properties: Mapping[str, Any] = tool.parameters.get("properties", {})
        required = set(tool.parameters.get("required", []))
        arguments: dict[str, Any] = {}
        for name, schema in properties.items():
            if name in required or rng.random() < self.config.optional_rate:
                arguments[name] = sample_schema_value(schema, name, rng)
        return Case(arguments, {k: _result_text(v) for k, v in arguments.items()})

    def request(self, tool: Tool, case: Case, rng: random.Random | None = None) -> str:
        """A request that asks for exactly `case`'s call."""
        rng = rng or self.rng
        if case.requests:
            return rng.choice(case.requests).format(**case.slots)
        phrases = self._phrases(tool)
        if phrases is not None and phrases.requests:
            usable = [
                t for t in phrases.requests if _fits(t, case.slots, set(case.arguments), tool)
            ]
            if usable:
                return rng.choice(usable).format(**case.slots)
        return self._generic_request(tool, case, rng)

    def _generic_request(self, tool: Tool, case: Case, rng: random.Random) -> str:
        summary = _summary(tool)
        parts = []
        for name, value in case.arguments.items():
            text = case.slots.get(name, _result_text(value))
            if isinstance(value, str) and " " in value:
                text = f'"{text}"'
            parts.append(f"{name.replace('_', ' ')} {text}")
        mentions = ", ".join(parts) if parts else "the defaults"
        template = rng.choice(GENERIC_REQUESTS)
        return template.format(
            Summary=summary[:1].upper() + summary[1:],
            summary=summary,
            mentions=mentions,
            Mentions=mentions[:1].upper() + mentions[1:],
        )

    def result(self, tool: Tool, case: Case, rng: random.Random) -> Any:
        """A tool result for a trajectory (the phrasebook's, else a placeholder)."""
        phrases = self._phrases(tool)
        if phrases is not None and phrases.result is not None:
            return phrases.result(case.arguments, rng)
        return {"status": "ok", "tool": tool.name}

    def answer(self, tool: Tool, case: Case, result: Any, rng: random.Random) -> str:
        """The final answer after `result`."""
        phrases = self._phrases(tool)
        if phrases is not None and phrases.compose_answer is not None:
            return phrases.compose_answer(case, result, rng)
        templates = phrases.answers if phrases is not None and phrases.answers else GENERIC_ANSWERS
        slots: dict[str, Any] = {**case.slots, "result": result}
        usable = [t for t in templates if _answer_fits(t, slots)]
        template = rng.choice(usable or GENERIC_ANSWERS)
        if "{result}" in template:
            slots["result"] = _result_text(result)
        return template.format(**slots)

    # -- examples --------------------------------------------------------------

    def _example(self, messages: list[dict[str, Any]], kind: str, **meta: Any) -> Example:
        return {
            "messages": messages,
            "tools": self.schemas,
            "metadata": {"kind": kind, "source": "synth", **meta},
        }

    def single(self, tool: Tool) -> Example:
        """One request, one call."""
        case = self.sample(tool)
        messages = [
            {"role": "user", "content": self.request(tool, case)},
            assistant_call_message([(tool.name, case.arguments)]),
        ]
        return self._example(messages, "single", tools_called=[tool.name])

    def trajectory(self, tool: Tool) -> Example:
        """Request, call, tool result, final answer."""
        case = self.sample(tool)
        result = self.result(tool, case, self.rng)
        call = assistant_call_message([(tool.name, case.arguments)])
        messages = [
            {"role": "user", "content": self.request(tool, case)},
            call,
            {
                "role": "tool",
                "tool_call_id": call["tool_calls"][0]["id"],
                "content": _result_text(result),
            },
            {"role": "assistant", "content": self.answer(tool, case, result, self.rng)},
        ]
        return self._example(messages, "trajectory", tools_called=[tool.name])

    def parallel(self, first: Tool, second: Tool) -> Example:
        """One request needing two calls in one turn, in the order asked."""
        case_a, case_b = self.sample(first), self.sample(second)
        a = _strip_end(self.request(first, case_a))
        b = _strip_end(self.request(second, case_b))
        joiners = self.phrasebook.joiners or GENERIC_JOINERS
        text = self.rng.choice(joiners).format(
            a=a, b=_lower_first(b), a_lc=_lower_first(a), b_lc=_lower_first(b)
        )
        messages = [
            {"role": "user", "content": text},
            assistant_call_message(
                [(first.name, case_a.arguments), (second.name, case_b.arguments)]
            ),
        ]
        return self._example(messages, "parallel", tools_called=[first.name, second.name])

    def no_tool(self, pair: tuple[str, str]) -> Example:
        """A request no tool fits, answered in text."""
        request, answer = pair
        messages = [
            {"role": "user", "content": request},
            {"role": "assistant", "content": answer},
        ]
        return self._example(messages, "no_tool", tools_called=[])

    def generate(self) -> list[Example]:
        """All examples, shuffled with the seed."""
        cfg = self.config
        examples: list[Example] = []
        for tool in self.tools:
            examples.extend(self.single(tool) for _ in range(cfg.per_tool))
            trajectories = round(cfg.per_tool * cfg.trajectory_ratio)
            examples.extend(self.trajectory(tool) for _ in range(trajectories))
        pairs = round(len(self.tools) * cfg.per_tool * cfg.parallel_ratio)
        for _ in range(pairs):
            first, second = self.rng.choice(self.tools), self.rng.choice(self.tools)
            examples.append(self.parallel(first, second))
        pool = self.phrasebook.no_tool or GENERIC_NO_TOOL
        if cfg.no_tool_share > 0:
            wanted = round(len(examples) * cfg.no_tool_share / (1 - cfg.no_tool_share))
            order = list(pool)
            self.rng.shuffle(order)
            examples.extend(self.no_tool(order[i % len(order)]) for i in range(wanted))
        self.rng.shuffle(examples)
        return examples


def _fits(template: str, slots: Mapping[str, str], arguments: set[str], tool: Tool) -> bool:
    """A request template fits a case when it names every argument and no missing slot."""
    used = template_slots(template)
    if not used <= set(slots):
        return False
    named_args = {name for name in arguments if name in tool.parameters.get("properties", {})}
    # A slot may be named after its argument or start with it (`path_text`).
    covered = {name for name in named_args if any(slot.startswith(name) for slot in used)}
    return covered == named_args


def _answer_fits(template: str, slots: Mapping[str, Any]) -> bool:
    if not template_slots(template) <= set(slots):
        return False
    try:
        template.format(**slots)
    except (KeyError, IndexError, TypeError, ValueError):
        return False
    return True


def synthesize(
    registry: ToolRegistry,
    *,
    per_tool: int = 40,
    seed: int = 0,
    phrasebook: Phrasebook | None = None,
    config: SynthConfig | None = None,
) -> list[Example]:
    """Synthesize a dataset for every tool in `registry`.

    Args:
        registry: The tools.
        per_tool: Single-call examples per tool (ignored when `config` is given).
        seed: Random seed (ignored when `config` is given).
        phrasebook: Wording and samplers; the built-in tools have one
            (`runtime.finetune.builtin_phrasings.builtin_phrasebook()`).
        config: Full control over counts and mix.

    Returns:
        Examples in the OpenAI fine-tuning format, with `metadata.kind`.
    """
    config = config or SynthConfig(per_tool=per_tool, seed=seed)
    return Synthesizer(registry, phrasebook, config).generate()


def tools_in(examples: Sequence[Example]) -> set[str]:
    """Names of the tools called anywhere in `examples`."""
    names: set[str] = set()
    for example in examples:
        for message in example["messages"]:
            for call in message.get("tool_calls") or []:
                names.add(call["function"]["name"])
    return names
