"""Requests that read like people wrote them, from a tool's schema and docstring alone.

For each parameter a `ParamProfile` works out what kind of value it holds
(a person, a place, a date, an identifier, a message, a count with a unit,
an enum...), realistic values for it (schema `examples`, enums, ranges,
formats, and example values named in its description: "for example km, mi,
kg") and the words a person puts around such a value ("from Paris", "in 20
minutes", "order A-1042", 'saying "running late"'). A `ToolProfile` turns the
description's first sentence into something to ask for ("get the weather
forecast"). `NaturalPhraser` puts the two together in many forms (question,
imperative, terse, polite, with context before the ask, lower case, a typo now
and then, numbers as words) and leaves optional arguments out the way people
do. Every value a call carries appears in the request (`Phrased.surfaces`
lists the text each one was written as), and no parameter is ever named the
way the schema names it.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema

from runtime.finetune import vocabulary as vocab

__all__ = [
    "NaturalPhraser",
    "ParamProfile",
    "Phrased",
    "ToolProfile",
    "description_examples",
    "split_name",
]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
_EXAMPLE_INTRO = re.compile(
    r"(?:e\.g\.|eg\.|i\.e\.|for example|for instance|such as|like|examples?:)\s*[:,]?\s*"
    r"(?P<body>[^.;)\n]+(?:\.\d[^.;)\n]*)?)",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"[`'\"]([^`'\"]{1,40})[`'\"]")

_PREPOSITIONS = {"from", "to", "in", "on", "at", "for", "by", "until", "since", "before", "after",
                 "with", "about", "into", "per"}  # fmt: skip
_UNIT_WORDS = {
    "seconds", "minutes", "hours", "days", "weeks", "months", "years", "nights", "guests",
    "people", "adults", "children", "kids", "seats", "items", "pages", "results", "copies",
    "tickets", "rooms", "percent", "degrees", "points", "units", "servings", "portions",
    "bedrooms", "miles", "kilometers", "km", "meters", "kg", "pounds", "dollars", "euros",
    "usd", "eur", "mins", "secs", "hrs", "retries", "attempts", "replicas", "instances",
    "lines", "rows", "entries", "messages", "votes", "stars", "steps", "laps", "bags",
}  # fmt: skip
_COUNT_NAMES = {"limit", "count", "n", "k", "top", "top_k", "max", "size", "page_size", "num",
                "number", "quantity", "qty", "max_results", "how_many"}  # fmt: skip
_ID_TAILS = {"id", "ids", "code", "number", "no", "num", "ref", "reference", "sku", "key",
             "slug", "handle", "tag", "token", "uuid"}  # fmt: skip
_PERSON_WORDS = {"name", "user", "person", "contact", "recipient", "assignee", "owner", "author",
                 "customer", "guest", "employee", "member", "attendee", "patient", "driver",
                 "manager", "username", "who", "passenger", "student", "agent", "doctor",
                 "artist", "teacher", "host", "speaker", "reviewer", "approver", "sender",
                 "friend", "colleague", "dentist", "coach"}  # fmt: skip
_PLACE_WORDS = {"city", "location", "place", "destination", "origin", "town", "region",
                "where", "venue", "address", "country", "airport", "station", "room", "area",
                "zone", "site", "office"}  # fmt: skip
_TEXT_WORDS = {"message", "text", "body", "content", "note", "notes", "comment", "reason",
               "caption", "prompt", "reply", "instructions", "details", "feedback", "msg",
               "description", "memo", "question", "answer", "review", "status_text",
               "summary", "resolution"}  # fmt: skip
_TITLE_WORDS = {"title", "subject", "label", "headline", "event", "task", "item",
                "product", "topic", "song", "track", "book", "movie", "playlist", "dish",
                "recipe", "project", "category", "team", "channel", "list", "folder"}  # fmt: skip
_QUERY_WORDS = {"query", "search", "keyword", "keywords", "term", "terms", "q", "filter",
                "pattern", "phrase", "text_query"}  # fmt: skip
_GETTER_VERBS = {"get", "fetch", "find", "look", "lookup", "check", "show", "list", "retrieve",
                 "return", "search", "read", "query", "view", "see", "count", "calculate",
                 "compute", "estimate", "describe", "summarize", "summarise"}  # fmt: skip
_VAGUE = re.compile(
    r"\b(given|specified|provided|supplied|requested|particular|certain|one or more|the user)\b"
)
# Verbs that say nothing without their object ("get in Tokyo").
_BLAND_VERBS = {"get", "start", "set", "make", "create", "run", "add", "look up", "check", "find",
                "show", "list", "do", "return", "fetch", "retrieve", "view", "read", "update",
                "change", "open", "close", "stop", "put", "place", "record", "log", "mark"}  # fmt: skip
_CLAUSE_WORDS = {"where", "what", "how", "whether", "if", "when", "who", "which", "why", "whom",
                 "up", "out", "off", "on"}  # fmt: skip
_OBJECT_CUT = re.compile(
    r"\s(?:for|from|to|in|on|at|by|with|of the|using|based on|via|into|and return|that|which|"
    r"if|when|so|according to|matching|between|under|over|as|per)\s|[,;:(]"
)


def split_name(name: str) -> list[str]:
    """`getWeather`, `get_weather`, `get-weather` -> ["get", "weather"]."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return [part.lower() for part in re.split(r"[\s_\-.]+", spaced) if part]


def _words(tokens: Sequence[str]) -> str:
    return " ".join(tokens)


def description_examples(description: str) -> list[str]:
    """Example values a description names ("for example km, mi, kg", "e.g. 'BA117'")."""
    found: list[str] = list(quoted_alternatives(description))
    for match in _EXAMPLE_INTRO.finditer(description or ""):
        body = match.group("body")
        quoted = _QUOTED.findall(body)
        parts = quoted or re.split(r",\s*|\s+or\s+|\s+and\s+|/", body)
        for part in parts:
            value = part.strip().strip("`'\"").strip()
            if value and len(value) <= 40 and value.lower() not in ("etc", "etc."):
                found.append(value)
    return list(dict.fromkeys(found))


def quoted_alternatives(description: str) -> list[str]:
    """A closed set of values written in prose: '"morning", "afternoon" or "any"'."""
    text = description or ""
    if _EXAMPLE_INTRO.search(text):
        return []  # examples, not the full set
    quoted = _QUOTED.findall(text)
    if len(quoted) >= 2 and re.search(r"[\"'`]\s*(?:,|or)\s*[\"'`]", text):
        return list(dict.fromkeys(q.strip() for q in quoted))
    return []


def _base_verb(word: str) -> str:
    """`Gets` -> `get`, `Retrieves` -> `retrieve`, `Searches` -> `search`."""
    low = word.lower()
    if low in ("is", "has", "does", "was", "this", "its", "status", "news", "always", "bus"):
        return {"has": "have", "does": "do", "is": "be"}.get(low, low)
    if low.endswith("ies") and len(low) > 4:
        return low[:-3] + "y"
    if re.search(r"(ss|sh|ch|x|z|o)es$", low):
        return low[:-2]
    if low.endswith("s") and not low.endswith("ss") and len(low) > 3:
        return low[:-1]
    return low


_COMMON_VERBS = {
    "add", "book", "buy", "calculate", "cancel", "change", "check", "close", "compute",
    "convert", "create", "delete", "disable", "download", "enable", "estimate", "fetch",
    "find", "get", "list", "log", "look", "lookup", "make", "mark", "move", "notify", "open",
    "order", "pause", "place", "play", "post", "reboot", "record", "refund", "register",
    "reject", "remove", "rename", "reply", "report", "request", "reserve", "reset", "restart",
    "resume", "retrieve", "return", "roll", "run", "save", "schedule", "search", "send", "set",
    "share", "show", "start", "stop", "submit", "subscribe", "summarize", "track", "translate",
    "turn", "unlock", "lock", "update", "upload", "validate", "view", "approve", "assign",
    "archive", "block", "charge", "issue", "locate", "measure", "page", "ping", "publish",
    "query", "rate", "read", "remind", "renew", "reschedule", "scale", "scan", "sort", "split",
    "switch", "sync", "tag", "transfer", "trigger", "unsubscribe", "verify", "write", "dim",
    "escalate", "flag", "grant", "invite", "join", "kick", "launch", "merge", "mute", "preview",
    "print", "rebook", "redeem", "rotate", "ship", "snooze", "tally", "test", "top", "toggle",
}  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class ToolProfile:
    """What a tool is asked to do, in a person's words.

    Attributes:
        verb: The action ("get", "book"); "look up" for lookups.
        obj: What it acts on, with an article when the description has one.
        getter: The tool answers a question (so "what's the ..." fits).
    """

    verb: str
    obj: str
    getter: bool

    @classmethod
    def of(cls, name: str, description: str) -> ToolProfile:
        name_tokens = split_name(name)
        first = _SENTENCE_END.split((description or "").strip(), maxsplit=1)[0]
        first = first.rstrip(".!? ").strip()
        words = first.split()
        verb = ""
        rest = ""
        if words:
            candidate = _base_verb(re.sub(r"[^A-Za-z]", "", words[0]))
            if candidate in _COMMON_VERBS or (
                words[0][:1].isupper() and words[0].lower().endswith("s") and len(words) > 1
            ):
                verb, rest = candidate, " ".join(words[1:])
        if not verb and name_tokens and name_tokens[0] in _COMMON_VERBS:
            verb = name_tokens[0]
            rest = _words(name_tokens[1:]) if len(name_tokens) > 1 else first
        elif not verb:
            verb, rest = "get", first or _words(name_tokens)
        if verb == "lookup" or (verb == "look" and rest.lower().startswith("up ")):
            verb, rest = "look up", rest[3:] if rest.lower().startswith("up ") else rest
        obj = _OBJECT_CUT.split(f" {rest} ", maxsplit=1)[0].strip()
        clause = obj.split(" ", 1)[0].lower() in _CLAUSE_WORDS
        if not obj or clause or _VAGUE.search(obj.lower()) or len(obj.split()) > 6:
            skip = 1 if name_tokens and name_tokens[0] in _COMMON_VERBS else 0
            tail = [t for t in name_tokens[skip:] if t != verb and t not in _PREPOSITIONS]
            obj = _words(tail) or "it"
        obj = obj[0].lower() + obj[1:] if obj[:2] != obj[:2].upper() else obj
        return cls(verb, obj, verb.split()[0] in _GETTER_VERBS)

    @property
    def core(self) -> str:
        """The object without its article ("weather forecast")."""
        return re.sub(r"^(?:a|an|the|some|all|any|one)\s+", "", self.obj)


@dataclasses.dataclass(frozen=True, slots=True)
class ParamProfile:
    """What a parameter holds and how a person mentions it.

    Attributes:
        name: The parameter's name.
        schema: Its JSON Schema.
        required: The call must carry it.
        kind: enum, boolean, count, number, date, datetime, time, email, url, id,
            person, place, text, title, query, path, list, object or string.
        noun: The words a person uses for it ("order", "check-in date").
        prep: A preposition its name implies ("from_city" -> "from").
        unit: A plural unit for numbers ("minutes").
        examples: Values from `examples`, `default`-free, and the description.
    """

    name: str
    schema: Mapping[str, Any]
    required: bool
    kind: str
    noun: str
    prep: str | None
    unit: str | None
    examples: tuple[Any, ...]

    @classmethod
    def of(cls, name: str, schema: Mapping[str, Any], required: bool) -> ParamProfile:
        schema = _with_described_bounds(_effective(schema))
        tokens = split_name(name)
        description = str(schema.get("description") or "")
        prep = tokens[0] if len(tokens) > 1 and tokens[0] in _PREPOSITIONS else None
        core = tokens[1:] if prep else tokens
        prep = prep or _implied_prep(core)
        kind = _kind(core, schema, description)
        unit = _unit(core, description) if kind in ("number", "count") else None
        noun_tokens = list(core)
        if kind == "id" and len(noun_tokens) > 1 and noun_tokens[-1] in _ID_TAILS:
            noun_tokens = noun_tokens[:-1]
        if unit and noun_tokens and noun_tokens[-1] == unit:
            noun_tokens = noun_tokens[:-1] or noun_tokens
        if len(noun_tokens) > 1 and noun_tokens[0] in ("num", "number", "max", "min", "is"):
            noun_tokens = noun_tokens[1:]
        alternatives = quoted_alternatives(description)
        if alternatives and schema.get("type") == "string" and "enum" not in schema:
            # '"morning", "afternoon" or "any"': a closed set written in prose
            schema = {**schema, "enum": alternatives}
            kind = "enum"
        examples = [*schema.get("examples", [])]
        named = description_examples(description)
        examples += [v for v in named if _valid(schema, v)]
        if kind == "list" and named:
            # "e.g. ["oat milk", "eggs"]": examples of the items, not of the list
            item_schema = _effective(schema.get("items") or {})
            items = [v for v in named if _valid(item_schema, v)]
            if items:
                schema = {**schema, "items": {**item_schema, "examples": items}}
        if schema.get("type") in ("integer", "number"):
            examples = [_to_number(v) for v in examples if _to_number(v) is not None]
        return cls(
            name=name,
            schema=schema,
            required=required,
            kind=kind,
            noun=_words(noun_tokens),
            prep=prep,
            unit=unit,
            examples=tuple(v for v in examples if _valid(schema, v)),
        )


_RANGE = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?)\s*(?:-|–|to|and)\s*(-?\d+(?:\.\d+)?)(?![\w.])")


def _with_described_bounds(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """A number's range written only in its description ("Discount in percent, 5 to 30.")."""
    if schema.get("type") not in ("integer", "number") or "minimum" in schema:
        return schema
    match = _RANGE.search(str(schema.get("description") or ""))
    if match is None:
        return schema
    low, high = float(match[1]), float(match[2])
    if low >= high:
        return schema
    cast = int if schema.get("type") == "integer" else float
    bounds = {"minimum": cast(low), "maximum": cast(high)}
    return {**schema, **bounds, "x-bounds-from-description": True}


def _effective(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """The non-null branch of `anyOf: [X, null]` (Optional[X]), with outer keys kept."""
    for key in ("anyOf", "oneOf"):
        options = [s for s in schema.get(key, []) if s.get("type") != "null"]
        if len(options) == 1:
            merged = {k: v for k, v in schema.items() if k != key}
            return {**options[0], **merged}
    return schema


def _implied_prep(core: Sequence[str]) -> str | None:
    head, last = core[0], core[-1]
    if head in ("start", "begin", "check") and "out" not in core:
        return "from" if head != "check" else "on"
    if head in ("end", "stop", "until", "finish") or "out" in core:
        return "until" if head != "check" else "on"
    if head in ("due", "deadline"):
        return "by"
    if head in ("origin", "source", "departure", "src"):
        return "from"
    if head in ("destination", "target", "recipient", "dest", "assignee", "arrival"):
        return "to"
    if last in ("city", "location", "town", "region", "country", "area", "venue"):
        return "in"
    if last in ("date", "day"):
        return "on"
    if last in ("time", "at"):
        return "at"
    return None


def _kind(core: Sequence[str], schema: Mapping[str, Any], description: str) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if schema.get("enum"):
        return "enum"
    if kind == "boolean":
        return "boolean"
    if kind == "array":
        return "list"
    if kind == "object":
        return "object"
    joined = " ".join(core)
    last = core[-1]
    if kind in ("integer", "number"):
        if (
            joined in _COUNT_NAMES
            or last in ("limit", "count", "results")
            or core[0]
            in (
                "max",
                "num",
                "number",
            )
        ):
            return "count"
        return "number"
    fmt = schema.get("format")
    lowered = description.lower()
    if fmt == "date" or "yyyy-mm-dd" in lowered or (last in ("date", "day", "birthday")):
        return "date"
    if fmt == "date-time" or "iso 8601" in lowered or last in ("datetime", "timestamp"):
        return "datetime"
    pattern = str(schema.get("pattern", ""))
    if (
        fmt == "time"
        or "hh:mm" in lowered
        or last == "time"
        or (":" in pattern and "\\d" in pattern)
    ):
        return "time"
    if fmt == "email" or "email" in core:
        return "email"
    if fmt in ("uri", "url") or last in ("url", "link", "uri", "website", "href"):
        return "url"
    if last in ("path", "file", "filename", "dir", "directory"):
        return "path"
    if last in _ID_TAILS or "id" in core:
        return "id"
    if last in _TEXT_WORDS:
        return "text"
    if last in _QUERY_WORDS or joined in _QUERY_WORDS:
        return "query"
    if last in _PERSON_WORDS or (last == "name" and len(core) == 1):
        return "person"
    if last in _PLACE_WORDS:
        return "place"
    if last in _TITLE_WORDS or last == "name":
        return "title"
    return "string"


def _unit(core: Sequence[str], description: str) -> str | None:
    if core[-1] in _UNIT_WORDS:
        return core[-1]
    match = re.search(r"\b(?:in|number of|how many)\s+([a-z]+)", description.lower())
    if match and match.group(1) in _UNIT_WORDS:
        return match.group(1)
    return None


def _valid(schema: Mapping[str, Any], value: Any) -> bool:
    try:
        jsonschema.validate(value, dict(schema), format_checker=jsonschema.FormatChecker())
    except (jsonschema.ValidationError, jsonschema.SchemaError):
        return False
    return True


def _to_number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    try:
        number = float(str(value).replace(",", ""))
    except ValueError:
        return None
    return int(number) if number.is_integer() else number


# -- values ---------------------------------------------------------------------


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
        if _valid(schema, value):
            return value
    if isinstance(schema.get("pattern"), str):
        for _ in range(8):
            try:
                value = from_pattern(schema["pattern"], rng)
            except (ValueError, re.error):
                break
            if _valid(schema, value):
                return value
    from runtime.finetune.phrasebook import sample_schema_value

    for _ in range(8):
        value = sample_schema_value(schema, profile.name, rng)
        if _valid(schema, value):
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
        items = _effective(schema.get("items") or {"type": "string"})
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


# -- mentions -------------------------------------------------------------------


def _number_text(value: Any, rng: random.Random) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) and 0 <= value <= 20 and rng.random() < 0.15:
        return vocab.NUMBER_WORDS[value]
    if isinstance(value, float) and value.is_integer() and rng.random() < 0.5:
        return str(int(value))
    if isinstance(value, int) and value >= 1000 and rng.random() < 0.3:
        return f"{value:,}"
    return str(value)


def _date_text(value: str, rng: random.Random) -> str:
    match = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", value)
    if not match or rng.random() < 0.75:
        return value
    year, month, day = (int(g) for g in match.groups())
    month_name = vocab.MONTHS[month - 1]
    return rng.choice([f"{month_name} {day}, {year}", f"{day} {month_name} {year}"])


def value_text(profile: ParamProfile, value: Any, rng: random.Random) -> str:
    """How a person writes this value."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number_text(value, rng)
    if isinstance(value, str):
        if profile.kind == "date":
            return _date_text(value, rng)
        if profile.kind == "enum" and "_" in value and rng.random() < 0.5:
            return value.replace("_", " ")
        return value
    if isinstance(value, list):
        texts = [value_text(profile, item, rng) for item in value]
        if len(texts) == 1:
            return texts[0]
        joiner = rng.choice([" and ", " & ", ", "])
        return ", ".join(texts[:-1]) + (joiner if joiner != ", " else ", ") + texts[-1]
    return json.dumps(value, ensure_ascii=False)


_TRUE_FALSE = re.compile(
    r"true\s+to\s+(?P<yes>[^,.;]+?)\s*[,;.]?\s*(?:and\s+|or\s+)?false\s+to\s+(?P<no>[^,.;]+)",
    re.IGNORECASE,
)


_STATES = {
    "on": ["off"], "enabled": ["disabled", "off"], "active": ["inactive", "off"],
    "locked": ["unlocked"], "open": ["closed", "shut"], "visible": ["hidden"],
    "muted": ["unmuted"], "public": ["private"], "available": ["unavailable"],
    "online": ["offline"], "paused": ["resumed", "running"], "archived": ["unarchived"],
}  # fmt: skip


def _flag_phrase(profile: ParamProfile, value: bool, rng: random.Random) -> str:
    described = _TRUE_FALSE.search(str(profile.schema.get("description") or ""))
    if described and rng.random() < 0.9:
        return described["yes" if value else "no"].strip()
    tokens = split_name(profile.name)
    if len(tokens) == 1 and tokens[0] in _STATES:
        # a state flag reads as the state itself: "lights off", "door unlocked"
        return tokens[0] if value else rng.choice(_STATES[tokens[0]])
    if tokens and tokens[0] in ("is", "should", "use", "enable", "enabled", "allow", "with"):
        tokens = tokens[1:] or tokens
    phrase = _words(tokens)
    if value:
        verbish = tokens[0] in ("include", "notify", "send", "force", "show", "skip", "overwrite",
                                "save", "email", "share", "sort", "only", "dry", "recursive",
                                "confirm", "refund", "cc", "keep", "delete", "auto", "ignore")  # fmt: skip
        options = [f"and {phrase}", f"({phrase})", f"with {phrase} on"] if verbish else []
        options += [f"with {phrase}", f"{phrase}: yes", f"and make it {phrase}"]
        return rng.choice(options)
    return rng.choice([f"without {phrase}", f"no {phrase}", f"{phrase} off", f"{phrase}: no"])


def mention(profile: ParamProfile, value: Any, rng: random.Random) -> tuple[str, str]:
    """The words around one value, and the text the value is written as."""
    if profile.kind == "boolean" and isinstance(value, bool):
        return _flag_phrase(profile, value, rng), ""
    text = value_text(profile, value, rng)
    noun, prep, kind = profile.noun, profile.prep, profile.kind
    options: list[str]
    if kind in ("number", "count") and profile.unit:
        options = [f"{text} {profile.unit}", f"{text} {profile.unit}"]
        if prep:
            options.append(f"{prep} {text} {profile.unit}")
    elif kind == "count":
        options = [f"{text} {noun}", f"top {text}", f"up to {text}", f"limit {text}",
                   f"at most {text}"]  # fmt: skip
    elif kind == "number":
        options = [f"{noun} {text}", f"{text}", f"{noun} of {text}", f"{text} {noun}"]
        if prep:
            options += [f"{prep} {text}"] * 2
    elif kind in ("date", "datetime", "time"):
        default = "at" if kind == "time" else "on"
        options = [f"{prep or default} {text}", f"{prep or default} {text}", f"{noun} {text}"]
    elif kind == "id":
        full = " ".join(split_name(profile.name)).replace(" id", " ID")
        options = [f"{noun} {text}", f"{full} {text}", f"{noun} #{text}", f"{text}",
                   f"{full} {text}"]  # fmt: skip
    elif kind in ("person", "place", "email"):
        options = [f"{prep} {text}"] * 3 if prep else []
        options += [f"for {text}", f"{noun} {text}", text]
    elif kind == "text":
        options = [f'saying "{text}"', f'"{text}"', f": {text}", f'with the {noun} "{text}"',
                   f"that says {text}"]  # fmt: skip
    elif kind == "title":
        options = [f'"{text}"', f"called {text}", f'titled "{text}"', f"{text}", f"{noun} {text}"]
    elif kind == "query":
        options = [f"for {text}", f'for "{text}"', f"about {text}", f'"{text}"']
    elif kind == "enum" and prep:
        # from/to pairs are told apart only by their prepositions
        options = [f"{prep} {text}"]
    elif kind == "enum":
        options = [f"{text}", f"{text} {noun}", f"{noun} {text}", f"as {text}"]
    elif kind == "list":
        options = [f"{noun} {text}", f"{text}", f"for {text}"]
    else:
        options = [f"{noun} {text}", f"{text}", f"with {noun} {text}"]
        if prep:
            options += [f"{prep} {text}"] * 2
    return rng.choice(options), text


_NO_DEFAULT = object()


# -- whole requests --------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Phrased:
    """A request and how each argument's value was written in it."""

    text: str
    surfaces: dict[str, str]


class NaturalPhraser:
    """Writes requests for tools from their names, descriptions and schemas."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._profiles: dict[tuple[str, str], ParamProfile] = {}

    def params(self, tool: Any) -> list[ParamProfile]:
        """Profiles of a tool's parameters (cached per tool and parameter)."""
        properties: Mapping[str, Any] = tool.parameters.get("properties", {})
        required = set(tool.parameters.get("required", []))
        out = []
        for name, schema in properties.items():
            key = (tool.name, name)
            if key not in self._profiles:
                self._profiles[key] = ParamProfile.of(name, schema, name in required)
            out.append(self._profiles[key])
        return out

    def arguments(self, tool: Any, optional_rate: float = 0.3) -> dict[str, Any]:
        """Values for every required parameter and, sometimes, an optional one."""
        arguments: dict[str, Any] = {}
        for profile in self.params(tool):
            if profile.required:
                arguments[profile.name] = sample_value(profile, self.rng)
            elif self.rng.random() < optional_rate * (
                1.5 if profile.kind in ("boolean", "enum") else 1.0
            ):  # settings (flags, choices) are what people most often add
                # People mention an optional setting to change it, not to restate its default.
                default = profile.schema.get("default", _NO_DEFAULT)
                for _ in range(6):
                    value = sample_value(profile, self.rng)
                    if value != default:
                        arguments[profile.name] = value
                        break
        return arguments

    def request(
        self,
        tool: Any,
        arguments: Mapping[str, Any],
        *,
        leave_out: str | None = None,
        keep_order: bool = False,
    ) -> Phrased:
        """A request asking for exactly `arguments` (minus `leave_out`, for clarifying).

        Values are mentioned in the order given (shuffled now and then unless
        `keep_order`), free text last.
        """
        rng = self.rng
        act = ToolProfile.of(tool.name, tool.description)
        profiles = {p.name: p for p in self.params(tool)}
        mentions: list[tuple[str, str, str]] = []
        for name, value in arguments.items():
            if name == leave_out or name not in profiles:
                continue
            words, surface = mention(profiles[name], value, rng)
            mentions.append((name, words, surface))
        texts = [m for m in mentions if m[1].startswith((": ", '"', "saying", "that says"))]
        others = [m for m in mentions if m not in texts]
        if not keep_order and rng.random() < 0.3:
            rng.shuffle(others)
        ordered = others + texts
        body = " ".join(words for _, words, _ in ordered).replace(" : ", ": ")
        text = self._frame(act, body, bool(ordered))
        return Phrased(text, {name: surface for name, _, surface in mentions})

    def _frame(self, act: ToolProfile, body: str, has_values: bool) -> str:
        rng = self.rng
        verb, obj, core = act.verb, act.obj, act.core
        spaced = f" {body}" if body else ""
        if body.startswith(":"):
            spaced = body
        keep_obj = not has_values or verb in _BLAND_VERBS or rng.random() < 0.85
        head = core.split()[-1].lower() if core else ""
        if head and body.lower().startswith(f"{head} "):
            # the value's own words name the object: "look up order #SO-1", not "an order order"
            keep_obj, core = False, ""
        ask = f"{verb} {obj}{spaced}" if keep_obj else f"{verb}{spaced}"
        forms = [
            f"{ask}",
            f"please {ask}",
            f"can you {ask}?",
            f"could you {ask}?",
            f"I need to {ask}",
            f"I'd like to {ask}",
            f"{ask} please",
            f"would you {ask}?",
            f"I want to {ask}",
            f"need you to {ask}",
        ]
        if act.getter and core:
            forms += [
                f"what's the {core}{spaced}?",
                f"what is the {core}{spaced}?",
                f"show me the {core}{spaced}",
                f"tell me the {core}{spaced}",
            ]
        if has_values:
            forms += [f"{core}{spaced}".strip(), f"{core}{spaced}?".strip()]
        request = rng.choice(forms)
        return request[0].upper() + request[1:] if rng.random() < 0.6 else request

    def style(self, text: str, protect: Sequence[str] = ()) -> str:
        """Vary the surface as people do: openers, closers, case, punctuation, typos."""
        rng = self.rng
        if rng.random() < 0.2:
            opener = rng.choice(vocab.OPENERS)
            text = (
                f"{opener} {text[0].lower() + text[1:] if text[:2] != text[:2].upper() else text}"
            )
        if rng.random() < 0.15:
            closer = rng.choice(vocab.CLOSERS)
            stripped = text.rstrip(".!")
            text = f"{stripped}, {closer}" if not stripped.endswith("?") else f"{stripped} {closer}"
        roll = rng.random()
        if roll < 0.2:
            text = _lower_outside(text, protect)
        elif roll < 0.45 and not text.endswith(("?", "!", '"')):
            text += "."
        if rng.random() < 0.08:
            text = _typo(text, protect, rng)
        return text


def _lower_outside(text: str, protect: Sequence[str]) -> str:
    spans = _protected_spans(text, protect)
    return "".join(
        ch if any(s <= i < e for s, e in spans) else ch.lower() for i, ch in enumerate(text)
    )


def _protected_spans(text: str, protect: Sequence[str]) -> list[tuple[int, int]]:
    spans = []
    for value in protect:
        if value:
            for match in re.finditer(re.escape(value), text):
                spans.append((match.start(), match.end()))
    return spans


def _typo(text: str, protect: Sequence[str], rng: random.Random) -> str:
    spans = _protected_spans(text, protect)
    words = [
        m
        for m in re.finditer(r"[A-Za-z]{5,}", text)
        if not any(s < m.end() and m.start() < e for s, e in spans)
    ]
    if not words:
        return text
    word = rng.choice(words)
    i = rng.randint(word.start() + 1, word.end() - 2)
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
