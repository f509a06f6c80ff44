"""Realistic values for a parameter, valid against its schema.

Enums, ranges, formats, regex `pattern`s, examples (reshaped: "BA117" ->
"KL904", so a model learns to copy values rather than memorise them) and
everyday pools (people, places, messages, titles) by the parameter's kind.
"""

from __future__ import annotations

import json
import random
import re
import string
from typing import Any

from runtime.finetune import vocabulary as vocab
from runtime.finetune.parameters import ParamProfile, effective_schema, is_valid

__all__ = ["UnsatisfiableSchema", "from_pattern", "sample_value"]


def _reshape(example: str, rng: random.Random) -> str:
    """A new value with the same shape as `example` ("BA117" -> "KL904")."""
    out = []
    for char in example:
        if char.isdigit():
            out.append(rng.choice(string.digits))
        elif char.isupper():
            out.append(rng.choice(string.ascii_uppercase))
        elif char.islower() and len(example) <= 12:
            out.append(rng.choice(string.ascii_lowercase))
        else:
            out.append(char)
    return "".join(out)


_ID_SHAPES = ["AA-9999", "99999", "A99999", "AAA-999", "999-999", "AA9999", "9999", "a9a9a9a9"]


def _sample_id(profile: ParamProfile, rng: random.Random) -> str:
    shape = rng.choice(_ID_SHAPES)
    value = "".join(
        rng.choice(string.digits)
        if c == "9"
        else rng.choice(string.ascii_uppercase)
        if c == "A"
        else rng.choice("abcdef0123456789")
        if c == "a"
        else c
        for c in shape
    )
    if value[0] == "0":
        value = str(rng.randint(1, 9)) + value[1:]
    return value


def _person(rng: random.Random, *, full: bool | None = None) -> str:
    first = rng.choice(vocab.FIRST_NAMES)
    if full if full is not None else rng.random() < 0.4:
        return f"{first} {rng.choice(vocab.LAST_NAMES)}"
    return first


def _place(profile: ParamProfile, rng: random.Random) -> str:
    noun = profile.noun
    if "airport" in noun:
        return rng.choice(vocab.AIRPORTS)
    if "country" in noun:
        return rng.choice(vocab.COUNTRIES)
    if "address" in noun:
        return rng.choice(vocab.STREETS)
    if "room" in noun or "office" in noun or "area" in noun or "zone" in noun:
        return rng.choice(["kitchen", "living room", "bedroom", "garage", "office", "hallway"])
    return rng.choice(vocab.CITIES)


def _number(profile: ParamProfile, rng: random.Random) -> float | int:
    schema = profile.schema
    integer = schema.get("type") == "integer"
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if "exclusiveMinimum" in schema and "minimum" not in schema:
        low = low + (1 if integer else 0.5)
    if "exclusiveMaximum" in schema and "maximum" not in schema:
        high = high - (1 if integer else 0.5)
    if profile.kind == "count" or profile.unit in ("nights", "guests", "people", "rooms", "seats"):
        default_low, default_high = 1, 10
    elif profile.unit in ("minutes", "mins"):
        default_low, default_high = 5, 90
    else:
        default_low, default_high = 1, 100 if rng.random() < 0.7 else 2000
    low = default_low if low is None else low
    high = max(low, default_high if high is None else high)
    if high - low > 1000 and rng.random() < 0.6:
        high = low + rng.choice([10, 50, 200])
    if integer:
        return rng.randint(int(math_ceil(low)), int(high))
    value = rng.uniform(low, high)
    return round(value, rng.choice([0, 1, 2])) if rng.random() < 0.6 else round(value)


def math_ceil(value: float) -> int:
    return int(value) if float(value).is_integer() else int(value) + 1


def _string(profile: ParamProfile, rng: random.Random) -> str:
    kind = profile.kind
    if kind == "date":
        return f"{rng.choice([2026, 2026, 2027])}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if kind == "datetime":
        return (
            f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            f"T{rng.randint(6, 21):02d}:{rng.choice(['00', '15', '30', '45'])}:00"
        )
    if kind == "time":
        return f"{rng.randint(6, 22):02d}:{rng.choice(['00', '15', '30', '45'])}"
    if kind == "email":
        return f"{rng.choice(vocab.FIRST_NAMES).lower()}@{rng.choice(vocab.DOMAINS)}"
    if kind == "url":
        return rng.choice(vocab.URLS)
    if kind == "path":
        return rng.choice(vocab.PATHS)
    if kind == "id":
        return _sample_id(profile, rng)
    if kind == "person":
        return _person(rng)
    if kind == "place":
        return _place(profile, rng)
    if kind == "text":
        noun = profile.noun
        if "reason" in noun or "why" in noun:
            return rng.choice(vocab.REASONS)
        pool = vocab.NOTES if "note" in noun or "instruction" in noun or "request" in noun else []
        return rng.choice(pool or vocab.MESSAGES)
    if kind == "title":
        return rng.choice(vocab.TITLES)
    if kind == "query":
        return rng.choice(vocab.QUERIES)
    if rng.random() < 0.7:
        return rng.choice(vocab.PROPER_NAMES)  # the name of some thing: "Harbor View"
    words = rng.sample(vocab.WORDS, rng.randint(1, 2))
    return " ".join(words)


class UnsatisfiableSchema(ValueError):
    """No valid value could be drawn for a parameter; the message says how to help."""


def sample_value(profile: ParamProfile, rng: random.Random, depth: int = 0) -> Any:
    """A realistic value for the parameter that validates against its schema.

    Raises:
        UnsatisfiableSchema: Neither realistic draws, a string built from the
            schema's `pattern`, nor plain schema sampling gave a valid value.
    """
    schema = profile.schema
    for _ in range(12):
        value = _draw(profile, rng, depth)
        if is_valid(schema, value):
            return value
    if isinstance(schema.get("pattern"), str):
        for _ in range(8):
            try:
                value = from_pattern(schema["pattern"], rng)
            except (ValueError, re.error):
                break
            if is_valid(schema, value):
                return value
    from runtime.finetune.phrasebook import sample_schema_value

    for _ in range(8):
        value = sample_schema_value(schema, profile.name, rng)
        if is_valid(schema, value):
            return value
    raise UnsatisfiableSchema(
        f"cannot draw a valid value for parameter {profile.name!r} (schema "
        f"{json.dumps(dict(schema))[:120]}); give it examples, e.g. "
        "Annotated[str, Field(examples=[...])], or seed requests with @tool(examples=...)"
    )


def from_pattern(pattern: str, rng: random.Random) -> str:
    """A string matching a simple regular expression (classes, repeats, groups, branches)."""
    import importlib

    # the stdlib's own regex parser (re._parser; typeshed has no stubs for it)
    sre_parse: Any = importlib.import_module("re._parser")
    sre_constants: Any = importlib.import_module("re._constants")

    categories = {
        sre_constants.CATEGORY_DIGIT: string.digits,
        sre_constants.CATEGORY_WORD: string.ascii_letters + string.digits,
        sre_constants.CATEGORY_SPACE: " ",
    }

    def emit(parsed: Any) -> str:
        out = []
        for op, av in parsed:
            if op is sre_constants.LITERAL:
                out.append(chr(av))
            elif op is sre_constants.ANY:
                out.append(rng.choice(string.ascii_lowercase))
            elif op is sre_constants.IN:
                pool = ""
                for kind, value in av:
                    if kind is sre_constants.NEGATE:
                        raise ValueError("negated classes are not generated")
                    if kind is sre_constants.LITERAL:
                        pool += chr(value)
                    elif kind is sre_constants.RANGE:
                        pool += "".join(chr(c) for c in range(value[0], value[1] + 1))
                    elif kind is sre_constants.CATEGORY:
                        pool += categories.get(value, "")
                if not pool:
                    raise ValueError("empty class")
                out.append(rng.choice(pool))
            elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
                low, high, sub = av
                high = min(high, low + 4) if high != sre_constants.MAXREPEAT else low + 4
                out.extend(emit(sub) for _ in range(rng.randint(low, max(low, high))))
            elif op is sre_constants.SUBPATTERN:
                out.append(emit(av[-1]))
            elif op is sre_constants.BRANCH:
                out.append(emit(rng.choice(av[1])))
            elif op is sre_constants.CATEGORY:
                out.append(rng.choice(categories.get(av, "x")))
            elif op is sre_constants.AT:
                continue
            else:
                raise ValueError(f"cannot generate {op}")
        return "".join(out)

    return emit(sre_parse.parse(pattern))


def _draw(profile: ParamProfile, rng: random.Random, depth: int) -> Any:
    schema = profile.schema
    if profile.kind == "enum":
        return rng.choice(list(schema["enum"]))
    if "const" in schema:
        return schema["const"]
    if profile.examples and (profile.kind in ("id", "string") or rng.random() < 0.6):
        # Examples show the shape a value must have: new values keep that shape.
        example = rng.choice(profile.examples)
        reshapable = isinstance(example, str) and any(c.isdigit() for c in example)
        if reshapable and profile.kind in ("id", "string") and rng.random() < 0.7:
            return _reshape(example, rng)
        return example
    if profile.kind == "boolean":
        return rng.random() < 0.6
    if profile.kind in ("number", "count"):
        return _number(profile, rng)
    if profile.kind == "list":
        items = effective_schema(schema.get("items") or {"type": "string"})
        item_profile = ParamProfile.of(_singular(profile.name), items, True)
        low = int(schema.get("minItems", 1))
        high = max(low, min(int(schema.get("maxItems", 3)), 3))
        values: list[Any] = []
        for _ in range(rng.randint(max(low, 1), max(high, 2))):
            value = sample_value(item_profile, rng, depth + 1)
            if value not in values:
                values.append(value)
        return values
    if profile.kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        return {
            key: sample_value(ParamProfile.of(key, sub, key in required), rng, depth + 1)
            for key, sub in properties.items()
            if key in required or (depth < 2 and rng.random() < 0.3)
        }
    return _string(profile, rng)


def _singular(name: str) -> str:
    if name.endswith("ies"):
        return name[:-3] + "y"
    if name.endswith("s") and not name.endswith("ss"):
        return name[:-1]
    return name
