"""What a tool parameter holds, read from its name, JSON Schema and description.

`ParamProfile.of` works out the kind of value a parameter takes (a person, a
place, a date, an identifier, a message, a count with a unit, an enum...), the
words a person uses for it ("order", "check-in"), a preposition its name
implies (`from_city` -> "from"), a unit ("minutes") and example values: schema
`examples`, values named in the description ("for example km, mi, kg"), closed
sets written in prose ('"morning" or "evening"') and ranges ("5 to 30").
`runtime.finetune.values` draws values from a profile; `runtime.finetune.natural`
writes the words around them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema

__all__ = [
    "PREPOSITIONS",
    "ParamProfile",
    "description_examples",
    "effective_schema",
    "is_valid",
    "quoted_alternatives",
    "split_name",
    "words",
]

_EXAMPLE_INTRO = re.compile(
    r"(?:e\.g\.|eg\.|i\.e\.|for example|for instance|such as|like|examples?:)\s*[:,]?\s*"
    r"(?P<body>[^.;)\n]+(?:\.\d[^.;)\n]*)?)",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"[`'\"]([^`'\"]{1,40})[`'\"]")

PREPOSITIONS = {"from", "to", "in", "on", "at", "for", "by", "until", "since", "before", "after",
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


def split_name(name: str) -> list[str]:
    """`getWeather`, `get_weather`, `get-weather` -> ["get", "weather"]."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return [part.lower() for part in re.split(r"[\s_\-.]+", spaced) if part]


def words(tokens: Sequence[str]) -> str:
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
        schema = _with_described_bounds(effective_schema(schema))
        tokens = split_name(name)
        description = str(schema.get("description") or "")
        prep = tokens[0] if len(tokens) > 1 and tokens[0] in PREPOSITIONS else None
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
        if len(noun_tokens) > 1 and noun_tokens[-1] == "name" and kind == "enum":
            noun_tokens = noun_tokens[:-1]  # list_name: "the pharmacy list"
        alternatives = quoted_alternatives(description)
        if alternatives and schema.get("type") == "string" and "enum" not in schema:
            # '"morning", "afternoon" or "any"': a closed set written in prose
            schema = {**schema, "enum": alternatives}
            kind = "enum"
        examples = [*schema.get("examples", [])]
        named = description_examples(description)
        examples += [v for v in named if is_valid(schema, v)]
        if kind == "list" and named:
            # "e.g. ["oat milk", "eggs"]": examples of the items, not of the list
            item_schema = effective_schema(schema.get("items") or {})
            items = [v for v in named if is_valid(item_schema, v)]
            if items:
                schema = {**schema, "items": {**item_schema, "examples": items}}
        if schema.get("type") in ("integer", "number"):
            examples = [_to_number(v) for v in examples if _to_number(v) is not None]
        return cls(
            name=name,
            schema=schema,
            required=required,
            kind=kind,
            noun=words(noun_tokens),
            prep=prep,
            unit=unit,
            examples=tuple(v for v in examples if is_valid(schema, v)),
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


def effective_schema(schema: Mapping[str, Any]) -> Mapping[str, Any]:
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
    if last in ("path", "file", "filename", "dir", "directory") or "file" in core:
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


def is_valid(schema: Mapping[str, Any], value: Any) -> bool:
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
