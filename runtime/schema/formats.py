"""The `format` checks the gate asserts, where jsonschema's own fall short of the RFCs.

jsonschema's checker is the base. Replaced here: `regex` (ECMA-262, not
Python's `re`), `date-time`, `date` and `time` (RFC 3339, leap seconds
included: `23:59:60` is valid when it is 23:59 UTC), `email` and `idn-email`
(RFC 5321 / RFC 6531 mailboxes, not "contains an @"). Added: `iri` and
`iri-reference` (RFC 3987), which jsonschema checks only with a GPL library.
Every check passes values that are not strings, as the specification says.
"""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Callable
from typing import Any

import jsonschema
from rfc3986_validator import validate_rfc3986  # type: ignore[import-untyped]

from runtime.schema.ecma_regex import EcmaRegexError, compile_ecma

__all__ = ["strict_format_checker"]

_DATE = r"(\d{4})-(\d{2})-(\d{2})"
_TIME = r"(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))"
_DATE_RE = re.compile(_DATE, re.ASCII)
_TIME_RE = re.compile(_TIME, re.ASCII)
_DATE_TIME_RE = re.compile(f"{_DATE}[Tt]{_TIME}", re.ASCII)


def _valid_date(year: str, month: str, day: str) -> bool:
    m = int(month)
    return 1 <= m <= 12 and 1 <= int(day) <= calendar.monthrange(int(year), m)[1]


def _valid_time(*fields: str | None) -> bool:
    hour, minute, second, sign, offset_hour, offset_minute = fields
    h, m, s = int(hour or 0), int(minute or 0), int(second or 0)
    oh, om = int(offset_hour or 0), int(offset_minute or 0)
    if h > 23 or m > 59 or s > 60 or oh > 23 or om > 59:
        return False
    if s < 60:
        return True
    # RFC 3339 5.7: a leap second is the 61st second of 23:59 UTC
    utc = h * 60 + m - (1 if sign == "+" else -1) * (oh * 60 + om)
    return utc % (24 * 60) == 23 * 60 + 59


def is_date(instance: object) -> bool:
    """RFC 3339 `full-date`."""
    if not isinstance(instance, str):
        return True
    match = _DATE_RE.fullmatch(instance)
    return match is not None and _valid_date(*match.groups())


def is_time(instance: object) -> bool:
    """RFC 3339 `full-time`: a time with an offset, leap seconds at 23:59 UTC."""
    if not isinstance(instance, str):
        return True
    match = _TIME_RE.fullmatch(instance)
    return match is not None and _valid_time(*match.groups())


def is_date_time(instance: object) -> bool:
    """RFC 3339 `date-time`."""
    if not isinstance(instance, str):
        return True
    match = _DATE_TIME_RE.fullmatch(instance)
    return (
        match is not None and _valid_date(*match.groups()[:3]) and _valid_time(*match.groups()[3:])
    )


# RFC 5321 4.1.2 (ASCII) and RFC 6531 3.3 (any non-ASCII character too)
_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-"
_UTF8_NON_ASCII = r"\x80-\ud7ff\ue000-\U0010ffff"
_LOCAL = rf'[{_ATEXT}]+(?:\.[{_ATEXT}]+)*|"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"'
_IDN_LOCAL = (
    rf"[{_ATEXT}{_UTF8_NON_ASCII}]+(?:\.[{_ATEXT}{_UTF8_NON_ASCII}]+)*"
    rf'|"(?:[\x20\x21\x23-\x5b\x5d-\x7e{_UTF8_NON_ASCII}]|\\[\x20-\x7e])*"'
)
# compiled on first use: the classes spanning all of Unicode take milliseconds
_regex = functools.cache(re.compile)


def _mailbox(
    instance: object, local_syntax: str, checker: jsonschema.FormatChecker, host: str
) -> bool:
    """RFC 5321 4.1.2 `Mailbox`, its domain checked as the `host` format."""
    if not isinstance(instance, str):
        return True
    local_part, at, domain = instance.rpartition("@")
    syntax_ok = at and _regex(local_syntax).fullmatch(local_part) is not None
    if not syntax_ok or len(local_part.encode("utf-8")) > 64:
        return False
    if domain.startswith("[") and domain.endswith("]"):
        literal = domain[1:-1]
        # RFC 5321's General-address-literal has no registered tag: only IPv4 and IPv6
        if literal[:5].lower() == "ipv6:":
            return checker.conforms(literal[5:], "ipv6")
        return checker.conforms(literal, "ipv4")
    return checker.conforms(domain, host)


def is_regex(instance: object) -> bool:
    """An ECMA-262 regular expression (Unicode mode), as JSON Schema patterns are."""
    if isinstance(instance, str):
        compile_ecma(instance)
    return True


# RFC 3987 2.2: the characters an IRI may hold where a URI holds percent-escapes
_UCSCHAR = (
    "[\xa0-\ud7ff\uf900-\ufdcf\ufdf0-\uffef"
    "\U00010000-\U0001fffd\U00020000-\U0002fffd\U00030000-\U0003fffd"
    "\U00040000-\U0004fffd\U00050000-\U0005fffd\U00060000-\U0006fffd"
    "\U00070000-\U0007fffd\U00080000-\U0008fffd\U00090000-\U0009fffd"
    "\U000a0000-\U000afffd\U000b0000-\U000bfffd\U000c0000-\U000cfffd"
    "\U000d0000-\U000dfffd\U000e1000-\U000efffd]"
)
_IPRIVATE = "[\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd]"


def _escape(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8"))


def _as_uri(iri: str) -> str:
    """RFC 3987 3.1: percent-encode what an IRI adds to a URI (private use only in the query)."""
    query_start = iri.find("?")
    fragment_start = iri.find("#")
    if query_start == -1 or -1 < fragment_start < query_start:
        head, query, tail = iri, "", ""
    else:
        end = iri.find("#", query_start)
        end = len(iri) if end == -1 else end
        head, query, tail = iri[:query_start], iri[query_start:end], iri[end:]
    ucschar, iprivate = _regex(_UCSCHAR), _regex(_IPRIVATE)
    query = iprivate.sub(_escape, ucschar.sub(_escape, query))
    return ucschar.sub(_escape, head) + query + ucschar.sub(_escape, tail)


def is_iri(instance: object) -> bool:
    """RFC 3987 `IRI`."""
    return not isinstance(instance, str) or bool(validate_rfc3986(_as_uri(instance), rule="URI"))


def is_iri_reference(instance: object) -> bool:
    """RFC 3987 `IRI-reference`."""
    return not isinstance(instance, str) or bool(
        validate_rfc3986(_as_uri(instance), rule="URI_reference")
    )


def strict_format_checker(base: jsonschema.FormatChecker) -> jsonschema.FormatChecker:
    """`base`'s checks with the RFC-exact ones above in place of those it has by name.

    `iri` and `iri-reference` are added where `base` checks `idn-hostname`
    (drafts 7 and later, which define all four).
    """
    checker = jsonschema.FormatChecker(formats=())
    checker.checkers.update(base.checkers)
    replacements: dict[str, tuple[Callable[[object], bool], Any]] = {
        "regex": (is_regex, EcmaRegexError),
        "date": (is_date, ()),
        "date-time": (is_date_time, ()),
        "email": (lambda value: _mailbox(value, _LOCAL, base, "hostname"), ()),
    }
    if "idn-hostname" in base.checkers:
        replacements["time"] = (is_time, ())
        replacements["idn-email"] = (
            lambda value: _mailbox(value, _IDN_LOCAL, base, "idn-hostname"),
            (),
        )
        replacements["iri"] = (is_iri, ())
        replacements["iri-reference"] = (is_iri_reference, ())
    for name, (check, raises) in replacements.items():
        if name in base.checkers or name.startswith("iri"):
            checker.checks(name, raises=raises)(check)
    return checker
