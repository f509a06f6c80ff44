"""Requests that read like people wrote them, from a tool's schema and docstring alone.

For each parameter a `ParamProfile` (`runtime.finetune.parameters`) works
out what kind of value it holds (a person, a place, a date, an identifier, a
message, a count with a unit, an enum...), `runtime.finetune.values` draws
realistic values for it, and this module writes the words a person puts
around such a value ("from Paris", "in 20
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
from collections.abc import Mapping, Sequence
from typing import Any

from runtime.finetune import vocabulary as vocab
from runtime.finetune.parameters import (
    PREPOSITIONS,
    ParamProfile,
    description_examples,
    split_name,
    words,
)
from runtime.finetune.values import UnsatisfiableSchema, sample_value

__all__ = [
    "NaturalPhraser",
    "ParamProfile",
    "Phrased",
    "ToolProfile",
    "UnsatisfiableSchema",
    "description_examples",
    "mention",
    "sample_value",
    "split_name",
]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
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
    alternatives: tuple[str, ...] = ()

    @classmethod
    def of(cls, name: str, description: str) -> ToolProfile:
        name_tokens = split_name(name)
        first = _SENTENCE_END.split((description or "").strip(), maxsplit=1)[0]
        first = first.rstrip(".!? ").strip()
        said = first.split()
        verb = ""
        rest = ""
        alternatives: tuple[str, ...] = ()
        if len(said) > 3 and said[1].lower() == "or":
            # "Lock or unlock a smart lock", "Enable or disable a feature flag"
            other = _base_verb(re.sub(r"[^A-Za-z]", "", said[2]))
            if other in _COMMON_VERBS or other.startswith(("un", "dis", "de", "re")):
                alternatives = (_base_verb(said[0]), other)
                said = [said[0], *said[3:]]
        if said:
            candidate = _base_verb(re.sub(r"[^A-Za-z]", "", said[0]))
            if candidate in _COMMON_VERBS or (
                said[0][:1].isupper() and said[0].lower().endswith("s") and len(said) > 1
            ):
                verb, rest = candidate, " ".join(said[1:])
        if not verb and name_tokens and name_tokens[0] in _COMMON_VERBS:
            verb = name_tokens[0]
            rest = words(name_tokens[1:]) if len(name_tokens) > 1 else first
        elif not verb:
            verb, rest = "get", first or words(name_tokens)
        if verb == "lookup" or (verb == "look" and rest.lower().startswith("up ")):
            verb, rest = "look up", rest[3:] if rest.lower().startswith("up ") else rest
        obj = _OBJECT_CUT.split(f" {rest} ", maxsplit=1)[0].strip()
        clause = obj.split(" ", 1)[0].lower() in _CLAUSE_WORDS
        if not obj or clause or _VAGUE.search(obj.lower()) or len(obj.split()) > 6:
            skip = 1 if name_tokens and name_tokens[0] in _COMMON_VERBS else 0
            tail = [t for t in name_tokens[skip:] if t != verb and t not in PREPOSITIONS]
            obj = words(tail) or "it"
        obj = obj[0].lower() + obj[1:] if obj[:2] != obj[:2].upper() else obj
        obj = re.sub(r"\s+(?:on or off|in or out|up or down)$", "", obj)
        return cls(verb, obj, verb.split()[0] in _GETTER_VERBS, alternatives)

    @property
    def core(self) -> str:
        """The object without its article ("weather forecast")."""
        return re.sub(r"^(?:a|an|the|some|all|any|one)\s+", "", self.obj)


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


def _time_text(value: str, rng: random.Random) -> str:
    """ "19:00" as people write it: "7pm", "7:30 pm", "19:00"."""
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)(?::00)?", value)
    if not match or rng.random() < 0.5:
        return value
    hour, minute = int(match[1]), int(match[2])
    suffix = rng.choice(["pm", " pm", "PM"]) if hour >= 12 else rng.choice(["am", " am", "AM"])
    twelve = hour % 12 or 12
    return f"{twelve}{suffix}" if minute == 0 else f"{twelve}:{minute:02d}{suffix}"


_PLACE_NOUNS = {"room", "zone", "area", "floor", "location", "region", "site", "city", "office",
                "space", "building", "venue", "level", "garden", "yard", "kitchen"}  # fmt: skip


def _is_place(profile: ParamProfile) -> bool:
    """An enum of places ("kitchen", "upstairs"): mentioned as "in the kitchen"."""
    tokens = split_name(profile.name)
    return bool(tokens) and tokens[-1] in _PLACE_NOUNS and not profile.prep


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
    phrase = words(tokens)
    if value:
        verbish = tokens[0] in ("include", "notify", "send", "force", "show", "skip", "overwrite",
                                "save", "email", "share", "sort", "only", "dry", "recursive",
                                "confirm", "refund", "cc", "keep", "delete", "auto", "ignore")  # fmt: skip
        options = [f"and {phrase}", f"({phrase})", f"with {phrase} on"] if verbish else []
        options += [phrase, phrase, f"with {phrase}", f"{phrase}: yes", f"and make it {phrase}"]
        return rng.choice(options)
    return rng.choice([f"without {phrase}", f"no {phrase}", f"{phrase} off", f"not {phrase}"])


def _flag_verb(profile: ParamProfile, value: Any, act: ToolProfile) -> str | None:
    """A flag whose setting is the tool's action ("True to lock, False to unlock";
    "True to switch on, False to switch off"): the words for `value`, else None."""
    if profile.kind != "boolean" or not isinstance(value, bool):
        return None
    described = _TRUE_FALSE.search(str(profile.schema.get("description") or ""))
    if described is None:
        return None
    phrase = described["yes" if value else "no"].strip()
    first = phrase.split()[0].lower() if phrase else ""
    if len(phrase.split()) > 3:
        return None
    if first in (act.verb.split()[0], *act.alternatives) or first in _COMMON_VERBS:
        return phrase
    return None


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
        options = [f"{noun} {text}", f"{text}", f"{noun} of {text}", f"{text} {noun}",
                   f"to {text}"]  # fmt: skip
        if prep:
            options += [f"{prep} {text}"] * 2
    elif kind in ("date", "datetime", "time"):
        if kind == "time" and isinstance(value, str):
            text = _time_text(value, rng)
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
    elif kind == "enum" and _is_place(profile):
        options = [f"in the {text}", f"in the {text}", f"{text}"]
    elif kind == "enum":
        options = [f"{text}", f"{text} {noun}", f"{text}"]
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
                1.3 if profile.kind in ("boolean", "enum") else 1.0
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
        verb = act.verb
        mentions: list[tuple[str, str, str]] = []
        for name, value in arguments.items():
            if name == leave_out or name not in profiles:
                continue
            profile = profiles[name]
            said = _flag_verb(profile, value, act) if verb == act.verb else None
            if said is not None and rng.random() < 0.85:
                # the flag is the action itself: "unlock the garage", "switch off the lights"
                verb = said
                mentions.append((name, "", ""))
                continue
            words, surface = mention(profile, value, rng)
            mentions.append((name, words, surface))
        if verb == act.verb and rng.random() < 0.7:
            for index, (name, _words, surface) in enumerate(mentions):
                if profiles[name].kind == "list" and surface and profiles[name].noun == act.core:
                    # "add eggs and oat milk", not "add items eggs and oat milk"
                    verb = f"{verb} {surface}"
                    act = dataclasses.replace(act, obj="", verb=verb)
                    mentions[index] = (name, "", surface)
                    break
        # The one-of-a-set parameter that says *which* thing ("kitchen", "front",
        # "humidity") often qualifies the object instead: "the kitchen lights".
        subject = next(
            (
                m
                for m in mentions
                if m[2]
                and profiles[m[0]].kind == "enum"
                and profiles[m[0]].required
                and not profiles[m[0]].prep
            ),
            None,
        )
        if subject is not None and rng.random() < 0.5:
            mentions = [m for m in mentions if m is not subject]
        else:
            subject = None
        texts = [m for m in mentions if m[1].startswith((": ", '"', "saying", "that says"))]
        others = [m for m in mentions if m not in texts]
        if not keep_order and rng.random() < 0.3:
            rng.shuffle(others)
        ordered = [m for m in others + texts if m[1]]
        body = " ".join(words for _, words, _ in ordered).replace(" : ", ": ")
        text = self._frame(
            act, body, bool(ordered), verb=verb, subject=subject[2] if subject else None
        )
        surfaces = {name: surface for name, _, surface in mentions}
        if subject is not None:
            surfaces[subject[0]] = subject[2]
        return Phrased(text, surfaces)

    def _frame(
        self,
        act: ToolProfile,
        body: str,
        has_values: bool,
        *,
        verb: str | None = None,
        subject: str | None = None,
    ) -> str:
        rng = self.rng
        verb = verb or act.verb
        obj, core = act.obj, act.core
        spaced = f" {body}" if body else ""
        if body.startswith(":"):
            spaced = body
        if subject is not None:
            if act.getter:
                forms = [f"what's the {subject}{spaced}?", f"what is the {subject}{spaced}?",
                         f"how's the {subject}{spaced}?", f"check the {subject}{spaced}",
                         f"what's the {subject} like{spaced}?"]  # fmt: skip
                request = rng.choice(forms)
                return request[0].upper() + request[1:] if rng.random() < 0.6 else request
            obj = core = f"{subject} {core}" if core and core != "it" else subject
            obj = f"the {obj}"
            has_values = True
        keep_obj = (
            subject is not None or not has_values or verb in _BLAND_VERBS or rng.random() < 0.85
        )
        head = core.split()[-1].lower() if core else ""
        if head and body.lower().startswith(f"{head} "):
            # the value's own words name the object: "look up order #SO-1", not "an order order"
            keep_obj, core = False, ""
        ask = f"{verb} {obj}{spaced}" if keep_obj and obj else f"{verb}{spaced}"
        particle = verb.rsplit(" ", 1)[-1] if " " in verb else ""
        split = particle in ("on", "off", "up", "down", "in", "out") and keep_obj and obj
        if split and rng.random() < 0.5:
            # "switch the kitchen lights off" as often as "switch off the kitchen lights"
            ask = f"{verb.rsplit(' ', 1)[0]} {obj} {particle}{spaced}"
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
        if particle in ("on", "off", "up", "down") and core:
            forms += [f"{core}{spaced} {particle}", f"{core} {particle}{spaced}"] * 2
        if verb != act.verb:
            # the verb carries a value ("unlock", "revoke"): every form keeps it
            request = rng.choice(forms)
            return request[0].upper() + request[1:] if rng.random() < 0.6 else request
        if act.getter and core:
            forms += [
                f"what's the {core}{spaced}?",
                f"what is the {core}{spaced}?",
                f"show me the {core}{spaced}",
                f"tell me the {core}{spaced}",
            ]
        if has_values and core:
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
