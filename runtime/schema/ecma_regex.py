"""ECMA-262 regular expressions: the dialect of JSON Schema's `pattern`.

Python's `re` reads the same text differently: its `\\d` and `\\w` match any
Unicode digit or letter (NKo `߀`, Arabic-Indic `١`, `é`), its `$` also
matches before a final newline, and it refuses `\\p{Letter}` and `\\cJ`. So
patterns run on `regress`, a Rust implementation of ECMA-262 regular
expressions, in Unicode mode (the `u` flag), as the JSON Schema Test Suite
expects. Like `re`, regress backtracks: patterns come from a tool's own schema
(trusted code), and arguments are size-capped before they reach a pattern.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

import regress

__all__ = ["EcmaRegexError", "compile_ecma", "ecma_search", "ecma_searcher"]

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

# Python spellings that ECMA-262 (Unicode mode) refuses, with the ECMA form.
_PYTHONISMS = (
    ("(?P<", "named groups are (?<name>...)"),
    ("(?P=", "a named backreference is \\k<name>"),
    ("\\Z", "the end of input is $"),
    ("\\A", "the start of input is ^"),
    ("(?i", "there are no inline flags; spell cases out ([Aa])"),
    ("(?s", "there are no inline flags; [\\s\\S] matches any character"),
    ("(?m", "there are no inline flags"),
    ("(?x", "there are no inline flags"),
)


class EcmaRegexError(ValueError):
    """A pattern is not an ECMA-262 regular expression; the message says how to fix it."""


@functools.lru_cache(maxsize=4096)
def compile_ecma(pattern: str) -> regress.Regex:
    """Compile `pattern` as ECMA-262 in Unicode mode, as JSON Schema reads it (cached).

    Raises:
        EcmaRegexError: The pattern is not valid ECMA-262 (Unicode mode).
    """
    try:
        return regress.Regex(pattern, flags="u")
    except UnicodeEncodeError:
        raise EcmaRegexError(
            f"pattern {pattern!r} holds a lone surrogate; write it as an escape (\\uD800)"
        ) from None
    except regress.RegressError as exc:
        hints = [hint for spelling, hint in _PYTHONISMS if spelling in pattern]
        if "escape" in str(exc) and not hints:
            hints.append("in Unicode mode only ^$\\.*+?()[]{}|/ and, in a class, - are escaped")
        advice = f" ({'; '.join(hints)})" if hints else ""
        raise EcmaRegexError(
            f"pattern {pattern!r} is not an ECMA-262 regular expression, the dialect JSON "
            f"Schema patterns are written in: {exc}{advice}"
        ) from None


def ecma_search(pattern: str, text: str) -> bool:
    """Whether `pattern` matches somewhere in `text`, as JSON Schema's `pattern` asks.

    JSON text may carry a lone surrogate (`"\\ud800"`), which no Unicode string
    holds; it is matched as U+FFFD, the replacement the audit log writes too.

    Raises:
        EcmaRegexError: The pattern is not valid ECMA-262 (Unicode mode).
    """
    return _found(compile_ecma(pattern), text)


def ecma_searcher(pattern: str) -> Callable[[str], bool]:
    """`ecma_search` with `pattern` compiled once: for checks that run on every call.

    Raises:
        EcmaRegexError: The pattern is not valid ECMA-262 (Unicode mode).
    """
    compiled = compile_ecma(pattern)
    return lambda text: _found(compiled, text)


def _found(compiled: regress.Regex, text: str) -> bool:
    try:
        return compiled.find(text) is not None
    except UnicodeEncodeError:
        return compiled.find(_LONE_SURROGATE.sub("\ufffd", text)) is not None
