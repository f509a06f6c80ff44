"""Synthetic training examples for every tool of a module, seeded and reproducible.

For each tool the synthesizer writes single-call requests, whole trajectories
(request -> call -> tool result -> final answer, so the model learns to answer
after a result instead of echoing it or calling again), and requests that
need two calls in one turn; for the module as a whole it adds requests no
tool fits, answered in plain text (so the model learns when *not* to call).

Arguments come from the tool's phrasebook entry when there is one
(`runtime.finetune.builtin_phrasings` has entries for the built-in tools) and
otherwise from its JSON Schema and docstring alone (`runtime.finetune.natural`):
values are placed where a person would put them ("convert 12 miles to km"),
parameter names are never spelled out, optional arguments are mostly left
out, and every value the call carries is written in the request, so the model
learns to take values from the request and never from a description. Seed
requests given with `@tool(examples=...)` are expanded by value substitution.

The requests that need no call share the tool requests' styles and include
near misses (a tool's topic, but nothing it does) and requests that leave out
a required value, answered by asking for it.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from runtime.finetune import vocabulary as vocab
from runtime.finetune.dataset_format import Example, assistant_call_message
from runtime.finetune.natural import (
    NaturalPhraser,
    ToolProfile,
    UnsatisfiableSchema,
    mention,
    split_name,
)
from runtime.finetune.natural import sample_value as natural_value
from runtime.finetune.phrasebook import (
    Case,
    Phrasebook,
    ToolPhrases,
    template_slots,
)


class ToolLike(Protocol):
    """What synthesis reads of a tool: a `Tool`, or a schema-only `SpecTool`."""

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def parameters(self) -> dict[str, Any]: ...


class ToolSet(Protocol):
    """A `ToolRegistry`, or a generated `SpecModule`."""

    def __iter__(self) -> Iterator[Any]: ...
    def openai_schemas(self) -> list[dict[str, Any]]: ...


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
        near_miss_share: Of the no-tool examples, the share about a tool's topic
            that asks for nothing it does (tools without a phrasebook entry).
        missing_value_share: Of the no-tool examples, the share that asks for a
            tool but leaves out a value it requires (the answer asks for it).
        seed_rate: Share of a tool's calls drawn from its `@tool(examples=...)`.
        system_prompt_share: Share of examples that start with a generic system
            prompt (agents send one before the tools; the model should not depend
            on its presence).
        seed: Same seed, same module, same phrasebook: same examples.
    """

    per_tool: int = 40
    trajectory_ratio: float = 0.35
    parallel_ratio: float = 0.2
    no_tool_share: float = 0.25
    optional_rate: float = 0.3
    near_miss_share: float = 0.2
    missing_value_share: float = 0.2
    seed_rate: float = 0.3
    system_prompt_share: float = 0.25
    seed: int = 0


GENERIC_JOINERS = [
    "{a}. Also, {b}.",
    "{a}, and {b}.",
    "Two things: {a}; {b}.",
    "{a}. Then {b}.",
    "Please {a_lc}, and also {b}.",
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


_POLITE_FRAMES = [
    "could you tell me: {q}",
    "please, {q}",
    "{q} please",
    "would you mind helping with this: {q}",
    "can you help? {q}",
    "I'd like to know: {q}",
]


def _strip_end(text: str) -> str:
    return text.rstrip().rstrip(".?!").rstrip()


def _lower_first(text: str) -> str:
    if len(text) > 1 and text[0].isupper() and not text[1].isupper() and not text.startswith("I "):
        return text[0].lower() + text[1:]
    return text


def _summary(tool: ToolLike) -> str:
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
        registry: ToolSet,
        phrasebook: Phrasebook | None = None,
        config: SynthConfig | None = None,
    ) -> None:
        self.registry = registry
        self.phrasebook = phrasebook or Phrasebook()
        self.config = config or SynthConfig()
        self.rng = random.Random(self.config.seed)
        self.phraser = NaturalPhraser(self.rng)
        self.tools = list(registry)
        if not self.tools:
            raise SynthesisError("the module defines no tools to synthesise examples for")
        self.schemas = registry.openai_schemas()
        for tool in self.tools:
            self._check_phrases(tool)
            if self._phrases(tool) is None:
                try:
                    NaturalPhraser(random.Random(0)).arguments(tool, 1.0)
                except UnsatisfiableSchema as exc:
                    raise SynthesisError(f"{tool.name}: {exc}") from None

    # -- cases ---------------------------------------------------------------

    def _phrases(self, tool: ToolLike) -> ToolPhrases | None:
        return self.phrasebook.tools.get(tool.name)

    def _check_phrases(self, tool: ToolLike) -> None:
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

    def sample(self, tool: ToolLike, rng: random.Random | None = None) -> Case:
        """Draw arguments (and their words) for one call of `tool`."""
        rng = rng or self.rng
        phrases = self._phrases(tool)
        if phrases is not None and phrases.sample is not None:
            return phrases.sample(rng)
        seeds = getattr(tool, "examples", ()) or ()
        if seeds and rng.random() < self.config.seed_rate:
            return self._from_seed(tool, rng.choice(seeds), rng)
        phraser = self.phraser if rng is self.rng else NaturalPhraser(rng)
        arguments = phraser.arguments(tool, self.config.optional_rate)
        return Case(arguments, {k: _result_text(v) for k, v in arguments.items()})

    def _from_seed(self, tool: ToolLike, seed: Any, rng: random.Random) -> Case:
        """A seed request with the values it writes out verbatim replaced by new ones."""
        request = str(seed.request)
        arguments = dict(seed.arguments)
        profiles = {p.name: p for p in self.phraser.params(tool)}
        for name, value in seed.arguments.items():
            old = value if isinstance(value, str) else _result_text(value)
            pattern = re.compile(rf"(?<![\w.]){re.escape(old)}(?![\w])", re.IGNORECASE)
            if name not in profiles or isinstance(value, bool) or not pattern.search(request):
                continue
            if rng.random() < 0.25:
                continue  # keep the seed's own value sometimes
            new = natural_value(profiles[name], rng)
            if isinstance(new, list | dict | bool):
                continue
            new_text = new if isinstance(new, str) else _result_text(new)
            request = pattern.sub(new_text.replace("\\", "\\\\"), request, count=1)
            arguments[name] = new
        return Case(arguments, {}, requests=(request.replace("{", "{{").replace("}", "}}"),))

    def request(
        self, tool: ToolLike, case: Case, rng: random.Random | None = None, *, styled: bool = True
    ) -> str:
        """A request that asks for exactly `case`'s call (`styled`: openers, case, typos)."""
        rng = rng or self.rng
        if case.requests:
            text = rng.choice(case.requests).format(**case.slots)
            if not styled:
                return text
            protect = [_result_text(v) for v in case.arguments.values()]
            return self.phraser.style(text, protect=protect)
        phrases = self._phrases(tool)
        if phrases is not None and phrases.requests:
            usable = [
                t for t in phrases.requests if _fits(t, case.slots, set(case.arguments), tool)
            ]
            if usable:
                return rng.choice(usable).format(**case.slots)
        phrased = self.phraser.request(tool, case.arguments)
        if not styled:
            return phrased.text
        return self.phraser.style(phrased.text, protect=list(phrased.surfaces.values()))

    def result(self, tool: ToolLike, case: Case, rng: random.Random) -> Any:
        """A tool result for a trajectory (the phrasebook's, else a placeholder)."""
        phrases = self._phrases(tool)
        if phrases is not None and phrases.result is not None:
            return phrases.result(case.arguments, rng)
        return {"status": "ok", "tool": tool.name}

    def answer(self, tool: ToolLike, case: Case, result: Any, rng: random.Random) -> str:
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
        if self.rng.random() < self.config.system_prompt_share:
            # Agents usually send a system prompt before the tools: train with and without.
            system = {"role": "system", "content": self.rng.choice(vocab.SYSTEM_PROMPTS)}
            messages = [system, *messages]
        return {
            "messages": messages,
            "tools": self.schemas,
            "metadata": {"kind": kind, "source": "synth", **meta},
        }

    def single(self, tool: ToolLike) -> Example:
        """One request, one call."""
        case = self.sample(tool)
        messages = [
            {"role": "user", "content": self.request(tool, case)},
            assistant_call_message([(tool.name, case.arguments)]),
        ]
        return self._example(messages, "single", tools_called=[tool.name])

    def trajectory(self, tool: ToolLike) -> Example:
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

    def parallel(self, first: ToolLike, second: ToolLike) -> Example:
        """One request needing two calls in one turn, in the order asked."""
        if first is second and not self._phrases(first) and self.rng.random() < 0.6:
            same = self._same_tool_twice(first)
            if same is not None:
                return same
        case_a, case_b = self.sample(first), self.sample(second)
        for _ in range(6):  # the same call twice is not two calls
            if first is not second or case_a.arguments != case_b.arguments:
                break
            case_b = self.sample(second)
        a = _strip_end(self.request(first, case_a, styled=False))
        b = _strip_end(self.request(second, case_b, styled=False))
        joiners = self.phrasebook.joiners or GENERIC_JOINERS
        text = self.rng.choice(joiners).format(
            a=a, b=_lower_first(b), a_lc=_lower_first(a), b_lc=_lower_first(b)
        )
        if not (self._phrases(first) or self._phrases(second)):
            values = [*case_a.arguments.values(), *case_b.arguments.values()]
            text = self.phraser.style(text, protect=[_result_text(v) for v in values])
        messages = [
            {"role": "user", "content": text},
            assistant_call_message(
                [(first.name, case_a.arguments), (second.name, case_b.arguments)]
            ),
        ]
        return self._example(messages, "parallel", tools_called=[first.name, second.name])

    def _same_tool_twice(self, tool: ToolLike) -> Example | None:
        """ "weather in Paris and in Oslo": one request, two calls differing in one value."""
        rng = self.rng
        profiles = [
            p for p in self.phraser.params(tool) if p.required and p.kind not in ("boolean", "list")
        ]
        if not profiles:
            return None
        varied = rng.choice(profiles)
        first = self.phraser.arguments(tool, self.config.optional_rate)
        for _ in range(8):
            other = natural_value(varied, rng)
            if other != first.get(varied.name):
                break
        else:
            return None
        ordered = {k: v for k, v in first.items() if k != varied.name}
        ordered[varied.name] = first[varied.name]
        second = {**ordered, varied.name: other}
        phrased = self.phraser.request(tool, ordered, keep_order=True)
        words, surface = mention(varied, other, rng)
        text = phrased.text
        end = "?" if text.endswith("?") else ""
        text = text.rstrip("?.! ")
        text = f"{text}{rng.choice([' and ', ', and also ', ' and then '])}{words}{end}"
        text = self.phraser.style(text, protect=[*phrased.surfaces.values(), surface])
        messages = [
            {"role": "user", "content": text},
            assistant_call_message([(tool.name, ordered), (tool.name, second)]),
        ]
        return self._example(messages, "parallel", tools_called=[tool.name, tool.name])

    def no_tool(self, pair: tuple[str, str], *, style: bool = True, why: str = "chat") -> Example:
        """A request no tool fits, answered in text."""
        request, answer = pair
        if style:
            if self.rng.random() < 0.3:
                # the polite frames tool requests get ("could you ..."), so style tells nothing
                request = self.rng.choice(_POLITE_FRAMES).format(q=_lower_first(request))
            request = self.phraser.style(request)
        messages = [
            {"role": "user", "content": request},
            {"role": "assistant", "content": answer},
        ]
        return self._example(messages, "no_tool", tools_called=[], why=why)

    def near_miss(self, tool: ToolLike) -> Example:
        """A request about a tool's topic that asks for nothing the tool does."""
        rng = self.rng
        act = ToolProfile.of(tool.name, tool.description)
        core = act.core
        enum_values = [
            str(v)
            for p in self.phraser.params(tool)
            if p.kind == "enum"
            for v in p.schema.get("enum", [])
            if isinstance(v, str) and len(v) > 2
        ]
        # Conceptual questions and remarks: never a request the tool would serve.
        templates = [
            f"how does {core} work?",
            f"why would anyone {act.verb} {act.obj}?",
            f"any general tips about {core}?",
            f"what's the history of {core}?",
            f"explain {core} like I'm five",
            f"I read an article about {core} today. Interesting stuff.",
            f"who came up with {core} in the first place?",
        ]
        if not act.getter:
            templates += [f"what is {act.obj}, exactly?", f"is it rude to {act.verb} {act.obj}?"]
        if enum_values:
            value = rng.choice(enum_values).replace("_", " ")
            templates += [f"what does '{value}' even mean?", f"tell me a fun fact about {value}"]
        request = rng.choice(templates)
        return self.no_tool((request, rng.choice(vocab.NEAR_MISS_ANSWERS)), why="near_miss")

    def missing_value(self, tool: ToolLike) -> Example | None:
        """A request for `tool` without a value it requires, answered by asking for it."""
        rng = self.rng
        askable = [
            p for p in self.phraser.params(tool) if p.required and p.kind not in ("boolean",)
        ]
        if not askable:
            return None
        missing = rng.choice(askable)
        arguments = self.phraser.arguments(tool, 0.0)
        phrased = self.phraser.request(tool, arguments, leave_out=missing.name)
        act = ToolProfile.of(tool.name, tool.description)
        noun = missing.noun or missing.name.replace("_", " ")
        if missing.kind == "id":
            noun = " ".join(split_name(missing.name)).replace(" id", " ID")
        if missing.unit:
            answer = rng.choice(
                [f"How many {missing.unit}?", f"Sure - for how many {missing.unit}?"]
            )
        else:
            answer = rng.choice(
                [
                    f"Sure - which {noun} should I use?",
                    f"Happy to {act.verb} {act.obj}. What {noun} do you have in mind?",
                    f"I can do that. What's the {noun}?",
                    f"Which {noun}? I need that before I can {act.verb} {act.obj}.",
                ]
            )
        text = self.phraser.style(phrased.text, protect=list(phrased.surfaces.values()))
        return self.no_tool((text, answer), style=False, why="missing_value")

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
            first = self.rng.choice(self.tools)
            second = first if self.rng.random() < 0.3 else self.rng.choice(self.tools)
            examples.append(self.parallel(first, second))
        if cfg.no_tool_share > 0:
            wanted = round(len(examples) * cfg.no_tool_share / (1 - cfg.no_tool_share))
            examples.extend(self._no_tool_mix(wanted))
        self.rng.shuffle(examples)
        return examples

    def _no_tool_mix(self, wanted: int) -> list[Example]:
        """Chit-chat and knowledge, near misses, and requests missing a value."""
        cfg = self.config
        pool = list(self.phrasebook.no_tool or [*GENERIC_NO_TOOL, *vocab.CHIT_CHAT])
        self.rng.shuffle(pool)
        generic_tools = [t for t in self.tools if not self._phrases(t)]
        out: list[Example] = []
        for i in range(wanted):
            roll = self.rng.random()
            tool = self.rng.choice(generic_tools) if generic_tools else None
            example: Example | None = None
            if tool is not None and roll < cfg.near_miss_share:
                example = self.near_miss(tool)
            elif tool is not None and roll < cfg.near_miss_share + cfg.missing_value_share:
                example = self.missing_value(tool)
            # a phrasebook's own no-tool requests are used as written
            styled = not self.phrasebook.no_tool
            out.append(example or self.no_tool(pool[i % len(pool)], style=styled))
        return out


def _fits(template: str, slots: Mapping[str, str], arguments: set[str], tool: ToolLike) -> bool:
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
    registry: ToolSet,
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
