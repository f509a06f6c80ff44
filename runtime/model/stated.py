"""What a conversation states: whether a value a model wrote for a parameter is
there in what people and tools said, judged from the text alone
(`runtime.model.grounding` fills, drops and withdraws by it).

"The conversation" is what people and tools said: user messages, tool results
and system text; never the worked requests shown before the request (the model
copies values from them, which is the fault grounding fixes) nor the tools'
descriptions. A value is *stated* when its words, or its number, appear there:
`"living_room"` in "living room lights", `30` in "30%", `"2027-02-06"` in
"February 6 2027", an identifier when its letters and digits appear in order
(`U24512` in "U2 4512"). Booleans, arrays, objects and strings whose shape the
schema fixes (a date or time pattern) unless they are dates are not judged
here (`stated` gives None): only the model can judge those.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runtime.model.tool_format import WORKED_REQUESTS_HEADER

__all__ = ["Conversation", "is_identifier", "normal_words", "stated", "value_kind"]

_WORD = re.compile(r"[^\W_]+")
# A number that stands on its own: not inside an id ("LH400"), a date ("2026-12-08"),
# a time ("19:00") or a version; a unit may follow ("30%", "5km", "7pm").
_NUMBER = re.compile(r"(?<![\w\-:/.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?!\d|[\-:/.]\d)")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
# An identifier: one token with letters and digits ("SO-104233", "K7Q2ZP", "EK30"),
# or an email address; not a date, a date-time or a time of day.
_IDENTIFIER = re.compile(r"^(?=\S*[^\W\d_])(?=\S*\d)\S{3,}$|^[^\s@]+@[^\s@]+$")
_CLOCK = re.compile(r"^\d{4}-\d{2}-\d{2}|^\d{1,2}:\d{2}")
_NOT_ALPHANUMERIC = re.compile(r"[\W_]+")
# fmt: off
_NUMBER_WORDS = {
    word: value
    for value, word in enumerate([
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
        "eighteen", "nineteen", "twenty",
    ])
} | {
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90, "hundred": 100, "dozen": 12, "single": 1, "couple": 2,
}
_MONTHS = [
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
]
# Words too common to state a value alone ("to", "the", "me").
_STOPWORDS = frozenset([
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "i", "in", "is", "it", "me",
    "my", "of", "on", "or", "our", "please", "the", "this", "to", "us", "we", "with", "you",
    "your",
])
# A dropped value would be replaced by the default: never drop when a request
# speaks of a date or time only relatively ("tomorrow", "next friday").
_RELATIVE = frozenset([
    "today", "tonight", "tomorrow", "yesterday", "monday", "tuesday", "wednesday", "thursday",
    "friday", "saturday", "sunday", "next", "weekend", "week", "month", "year", "morning",
    "afternoon", "evening", "noon", "midnight",
])
# fmt: on


def _stem(word: str) -> str:
    """A word without its plural ending ("mornings" -> "morning", "batteries" -> "battery")."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "xes", "sses", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def normal_words(text: str) -> str:
    """Case-folded word stems separated by single spaces ("Kids' rooms" -> "kid room")."""
    folded = unicodedata.normalize("NFKC", text).casefold().replace("_", " ")
    return " ".join(_stem(word) for word in _WORD.findall(folded))


@dataclass(frozen=True)
class Conversation:
    """The text of a conversation that can state an argument's value."""

    text: str
    words: str = field(init=False)
    numbers: frozenset[float] = field(init=False)
    compact: str = field(init=False)  # letters and digits only, case-folded

    def __post_init__(self) -> None:
        object.__setattr__(self, "words", f" {normal_words(self.text)} ")
        object.__setattr__(self, "compact", _compact(self.text))
        numbers = {
            float(whole.replace(",", "") + (fraction or ""))
            for whole, fraction in _NUMBER.findall(self.text)
        }
        numbers |= {float(v) for w, v in _NUMBER_WORDS.items() if f" {w} " in self.words}
        object.__setattr__(self, "numbers", frozenset(numbers))

    @classmethod
    def of(cls, messages: Sequence[Mapping[str, Any]]) -> Conversation:
        """User, tool and system text of `messages`, without worked requests."""
        parts: list[str] = []
        for message in messages:
            if message.get("role") not in ("user", "tool", "system"):
                continue
            content = message.get("content")
            if isinstance(content, list):  # content parts
                content = " ".join(
                    str(p.get("text", "")) for p in content if isinstance(p, Mapping)
                )
            if not isinstance(content, str) or content.startswith(WORKED_REQUESTS_HEADER):
                continue
            parts.append(content)
        return cls("\n".join(parts))

    def has_phrase(self, text: str) -> bool:
        phrase = normal_words(text)
        return bool(phrase) and f" {phrase} " in self.words

    def has_word(self, word: str) -> bool:
        return f" {_stem(word)} " in self.words

    def has_identifier(self, value: str) -> bool:
        """Whether the identifier's letters and digits appear in order, whatever
        the case and separators ("u2 4512" states `U24512`)."""
        return _compact(value) in self.compact


def _compact(text: str) -> str:
    return _NOT_ALPHANUMERIC.sub("", unicodedata.normalize("NFKC", text).casefold())


def is_identifier(value: Any, schema: Any) -> bool:
    """Whether `value` is an identifier that only a person (or a tool result) can
    give, for a parameter whose schema does not list its values."""
    if not isinstance(value, str) or _CLOCK.match(value) or not _IDENTIFIER.match(value):
        return False
    if isinstance(schema, Mapping):
        options = [schema, *(o for k in ("anyOf", "oneOf") for o in schema.get(k) or [])]
        if any(isinstance(o, Mapping) and "enum" in o for o in options):
            return False
    return True


def value_kind(schema: Any) -> str | None:
    """ "number", "string", "enum", "date" or None (not judged here) for a parameter."""
    if not isinstance(schema, Mapping):
        return None
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            kinds = {
                value_kind(o)
                for o in options
                if not (isinstance(o, Mapping) and o.get("type") == "null")
            }
            return kinds.pop() if len(kinds) == 1 else None
    if isinstance(schema.get("enum"), list):
        values = schema["enum"]
        return "enum" if values and all(isinstance(v, str) for v in values) else None
    kind = schema.get("type")
    if isinstance(kind, list):
        real = [k for k in kind if k != "null"]
        kind = real[0] if len(real) == 1 else None
    if kind in ("integer", "number"):
        return "number"
    if kind != "string":
        return None
    description = str(schema.get("description") or "")
    if schema.get("format") == "date" or "YYYY-MM-DD" in description:
        return "date"
    if "pattern" in schema or "format" in schema or re.search(r"\bHH:MM\b", description):
        return None
    return "string"


def _date_stated(value: str, conversation: Conversation, *, strict: bool) -> bool:
    match = _ISO_DATE.match(value)
    if not match:
        return False
    if value in conversation.text:
        return True
    year, month, day = (int(part) for part in match.groups())
    month_name = _MONTHS[month - 1] if 1 <= month <= 12 else ""
    day_said = re.search(rf"(?<!\d){day}(?:st|nd|rd|th)?(?!\d)", conversation.text.casefold())
    month_said = conversation.has_word(month_name) or conversation.has_word(month_name[:3])
    year_ok = str(year) in conversation.text or not re.search(r"\b\d{4}\b", conversation.text)
    if day_said and month_said and year_ok:
        return True
    return not strict and any(conversation.has_word(w) for w in _RELATIVE)


def stated(value: Any, schema: Any, conversation: Conversation, *, strict: bool) -> bool | None:
    """Whether `conversation` states `value` for a parameter with `schema`; None when
    this kind of value is not judged here (booleans, arrays, objects, shaped strings).

    `strict` (used before adding a value) wants the whole value; lenient (used before
    dropping one) is content with any telling word of it, or a relative date. An
    identifier is stated when its letters and digits are, in either case."""
    if is_identifier(value, schema):
        return conversation.has_identifier(value)
    kind = value_kind(schema)
    if kind is None or value is None or isinstance(value, bool):
        return None
    if kind == "number":
        if not isinstance(value, (int, float)):
            return None
        return any(abs(float(value) - n) < 1e-9 for n in conversation.numbers)
    if not isinstance(value, str):
        return None
    if kind == "date":
        return _date_stated(value, conversation, strict=strict)
    telling = [w for w in normal_words(value).split() if w not in _STOPWORDS and len(w) > 2]
    if strict and kind == "enum":  # one of a few names the schema lists: its words suffice
        return conversation.has_phrase(value)
    if strict:
        # a phrase of the conversation with at least one telling word: not "2" of
        # "2 nights" nor "to" of "to 40%"
        return any(not w.isdigit() for w in telling) and conversation.has_phrase(value)
    return conversation.has_phrase(value) or any(conversation.has_word(w) for w in telling)
