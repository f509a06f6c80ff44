"""How requests for a tool are phrased: templates, argument samplers, answers.

A `Phrasebook` lends the synthesizer realistic wording. Without one, a tool's
requests are built from its schema and docstring alone (`sample_schema_value`);
with one, each tool can have request templates, a sampler that draws
arguments together with the text that names them (a unit's spelled-out name,
an expression read aloud), a way to produce a tool result and answer
templates for whole trajectories.

Templates are `str.format` strings over the slots a sampler returns, plus
`{result}` (and `{result[key]}` for object results) in answers.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import string
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "Case",
    "NoToolPair",
    "Phrasebook",
    "ToolPhrases",
    "load_phrasebook",
    "sample_schema_value",
    "template_slots",
]


@dataclasses.dataclass(frozen=True, slots=True)
class Case:
    """One draw of arguments and the words a request uses for them.

    Attributes:
        arguments: What the call must carry.
        slots: Placeholder name -> text, for request and answer templates.
        requests: Templates for this case only (e.g. a call relying on a
            default), used instead of the tool's.
    """

    arguments: dict[str, Any]
    slots: dict[str, str]
    requests: tuple[str, ...] = ()


Sampler = Callable[[random.Random], Case]
ResultMaker = Callable[[Mapping[str, Any], random.Random], Any]
AnswerMaker = Callable[[Case, Any, random.Random], str]


@dataclasses.dataclass(slots=True)
class ToolPhrases:
    """Phrasing for one tool.

    Attributes:
        requests: Request templates over the sampler's slots.
        sample: Draws a `Case`; default: values from the schema.
        answers: Final-answer templates (slots plus `{result}`).
        result: Makes a tool result for trajectories; default: a placeholder.
        compose_answer: Writes the final answer itself (wins over `answers`).
    """

    requests: list[str] = dataclasses.field(default_factory=list)
    sample: Sampler | None = None
    answers: list[str] = dataclasses.field(default_factory=list)
    result: ResultMaker | None = None
    compose_answer: AnswerMaker | None = None


NoToolPair = tuple[str, str]


@dataclasses.dataclass(slots=True)
class Phrasebook:
    """Phrasing for a module's tools, plus requests no tool should answer.

    Attributes:
        tools: Per-tool phrasing, by tool name.
        no_tool: (request, answer) pairs where the right move is to answer in text.
        joiners: Templates joining two requests `{a}` and `{b}` into one turn.
    """

    tools: dict[str, ToolPhrases] = dataclasses.field(default_factory=dict)
    no_tool: list[NoToolPair] = dataclasses.field(default_factory=list)
    joiners: list[str] = dataclasses.field(default_factory=list)

    def merged(self, other: Phrasebook) -> Phrasebook:
        """This phrasebook with `other`'s entries added (other wins per tool)."""
        return Phrasebook(
            tools={**self.tools, **other.tools},
            no_tool=[*self.no_tool, *other.no_tool],
            joiners=[*self.joiners, *other.joiners] if other.joiners else list(self.joiners),
        )


def template_slots(template: str) -> set[str]:
    """The top-level slot names a template uses (`{value}`, `{result[x]}` -> result)."""
    return {
        field.split("[")[0].split(".")[0]
        for _, field, _, _ in string.Formatter().parse(template)
        if field
    }


# -- values from a JSON Schema -------------------------------------------------

_WORDS = [
    "alpha", "report", "summary", "budget", "invoice", "meeting", "project", "weekly",
    "draft", "backup", "customer", "sales", "march", "notes", "release", "server",
]  # fmt: skip
_NAMES = ["Alice", "Bob", "Carmen", "Deepak", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jon"]
_CITIES = ["Paris", "Berlin", "Lagos", "Osaka", "Lima", "Toronto", "Madrid", "Cairo", "Oslo"]
_HINTS: list[tuple[tuple[str, ...], list[str]]] = [
    (("city", "town", "location", "place"), _CITIES),
    (("name", "user", "person", "owner", "author"), _NAMES),
    (("email",), [f"{n.lower()}@example.com" for n in _NAMES]),
    (("path", "file", "filename"), ["notes/todo.txt", "data/sales.csv", "README.md", "src/app.py"]),
    (("url", "link", "uri"), ["https://example.com/docs", "https://example.org/status"]),
    (("query", "search", "term", "keyword"), ["quarterly revenue", "open tickets", "python tips"]),
    (("country",), ["France", "Japan", "Brazil", "Kenya", "Canada"]),
    (("currency",), ["USD", "EUR", "JPY", "GBP"]),
    (("language", "lang"), ["English", "Spanish", "German", "Japanese"]),
    (("color", "colour"), ["red", "green", "blue"]),
    (("title", "subject", "topic"), ["Weekly sync", "Quarterly plan", "Release notes"]),
]


def _nice_number(low: float, high: float, rng: random.Random, *, integer: bool) -> float | int:
    if integer:
        return rng.randint(int(low), int(high))
    value = rng.uniform(low, high)
    return round(value, rng.choice([0, 1, 1, 2])) if abs(value) >= 1 else round(value, 2)


def sample_schema_value(schema: Mapping[str, Any], name: str, rng: random.Random) -> Any:
    """Draw a realistic value for `schema` (enums, ranges, formats, name hints)."""
    if schema.get("enum"):
        return rng.choice(list(schema["enum"]))
    if "const" in schema:
        return schema["const"]
    if schema.get("examples"):
        return rng.choice(list(schema["examples"]))
    for key in ("anyOf", "oneOf"):
        options = [s for s in schema.get(key, []) if s.get("type") != "null"]
        if options:
            return sample_schema_value(rng.choice(options), name, rng)
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 1))
        high = schema.get("maximum", schema.get("exclusiveMaximum", max(low, 0) + 100))
        if "exclusiveMinimum" in schema and "minimum" not in schema:
            low = low + 1 if kind == "integer" else low + 0.01
        if "exclusiveMaximum" in schema and "maximum" not in schema:
            high = high - 1 if kind == "integer" else high - 0.01
        return _nice_number(low, high, rng, integer=kind == "integer")
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        items = schema.get("items", {"type": "string"})
        low = int(schema.get("minItems", 1))
        high = max(low, min(int(schema.get("maxItems", 3)), 3))
        return [sample_schema_value(items, name, rng) for _ in range(rng.randint(low, high))]
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", properties))
        return {
            key: sample_schema_value(sub, key, rng)
            for key, sub in properties.items()
            if key in required
        }
    return _sample_string(schema, name, rng)


def _sample_string(schema: Mapping[str, Any], name: str, rng: random.Random) -> str:
    fmt = schema.get("format")
    if fmt == "date":
        return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if fmt == "date-time":
        return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z"
    if fmt == "time":
        return f"{rng.randint(0, 23):02d}:{rng.choice(['00', '15', '30', '45'])}"
    if fmt == "email":
        return f"{rng.choice(_NAMES).lower()}@example.com"
    if fmt in ("uri", "url"):
        return f"https://example.com/{rng.choice(_WORDS)}"
    if fmt == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128)))
    lowered = name.lower()
    value = next(
        (rng.choice(pool) for keys, pool in _HINTS if any(k in lowered for k in keys)),
        None,
    )
    if value is None:
        value = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 2)))
    min_len, max_len = int(schema.get("minLength", 1)), int(schema.get("maxLength", 200))
    value = value[:max_len]
    return value.ljust(min_len, "x")


# -- phrasebooks from JSON files -----------------------------------------------


def load_phrasebook(path: str | os.PathLike[str]) -> Phrasebook:
    """Read a phrasebook from JSON.

    Format::

        {"tools": {"get_weather": {
             "requests": ["What's the weather in {city}?"],
             "cases": [{"arguments": {"city": "Paris"}, "slots": {"city": "Paris"}}],
             "values": {"city": ["Paris", "Oslo"]},
             "answers": ["It is {result[temp]} degrees in {city}."],
             "results": [{"temp": 21}]}},
         "no_tool": [["Write a haiku about rain", "Soft rain on the roof..."]],
         "joiners": ["{a}, and {b}"]}

    `cases` (joint draws) win over `values` (independent draws per argument;
    the slot text is the value itself). Every request template must name
    only slots its cases provide.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    tools: dict[str, ToolPhrases] = {}
    for name, spec in (data.get("tools") or {}).items():
        tools[name] = ToolPhrases(
            requests=list(spec.get("requests", [])),
            sample=_json_sampler(spec),
            answers=list(spec.get("answers", [])),
            result=_json_results(spec.get("results")),
        )
    pairs = [(str(a), str(b)) for a, b in data.get("no_tool", [])]
    return Phrasebook(tools=tools, no_tool=pairs, joiners=list(data.get("joiners", [])))


def _json_sampler(spec: Mapping[str, Any]) -> Sampler | None:
    cases = spec.get("cases")
    values = spec.get("values")
    if cases:
        parsed = [
            Case(
                dict(c["arguments"]), {k: str(v) for k, v in c.get("slots", c["arguments"]).items()}
            )
            for c in cases
        ]
        return lambda rng: rng.choice(parsed)
    if values:
        pools = {key: list(pool) for key, pool in values.items()}

        def sample(rng: random.Random) -> Case:
            arguments = {key: rng.choice(pool) for key, pool in pools.items()}
            return Case(arguments, {k: _text(v) for k, v in arguments.items()})

        return sample
    return None


def _json_results(results: Sequence[Any] | None) -> ResultMaker | None:
    if not results:
        return None
    pool = list(results)
    return lambda _args, rng: rng.choice(pool)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
