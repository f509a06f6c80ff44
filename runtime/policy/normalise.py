"""Normalisers for the operators: paths, hosts, IP literals, URLs, and the regex guard."""

from __future__ import annotations

import importlib
import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import idna

__all__ = [
    "EvalError",
    "ParsedUrl",
    "compile_regex",
    "embedded_ipv4",
    "normalise_host",
    "normalise_host_pattern",
    "normalise_root",
    "parse_ip",
    "parse_ipv4",
    "parse_url",
    "path_variants",
    "split_path",
]

_URL_MAX = 8192
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}


class EvalError(Exception):
    """A present value could not be judged; the operator's result is ERROR."""


# --------------------------------------------------------------------------- paths


def split_path(path: str) -> tuple[bool, tuple[str, ...]] | None:
    """Resolve `.`/`..` lexically; None when the path climbs above its start."""
    text = path.replace("\\", "/")
    segments: list[str] = []
    for segment in text.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not segments:
                return None
            segments.pop()
        else:
            segments.append(segment)
    return text.startswith("/"), tuple(segments)


def normalise_root(root: str) -> tuple[bool, tuple[str, ...]]:
    """Check and normalise a `path_under` root given in a policy file.

    Raises:
        ValueError: The root is empty, contains NUL, or climbs above itself.
    """
    if not root or "\x00" in root:
        raise ValueError(f"{root!r} is not a usable path root")
    split = split_path(root)
    if split is None:
        raise ValueError(f"path root {root!r} climbs above itself with '..'")
    return split


def path_variants(path: str) -> list[str]:
    variants = [path]
    current = path
    for _ in range(3):
        decoded = unquote(current, errors="strict")
        if decoded == current:
            return variants
        variants.append(decoded)
        current = decoded
    raise EvalError("path is percent-encoded more than three times")


# --------------------------------------------------------------------------- hosts, IPs, URLs

_NUMERIC_LABEL = re.compile(r"^(?:[0-9]+|0[xX][0-9a-fA-F]*)$")
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Read an IPv4 literal the way `inet_aton` and WHATWG URL parsers do.

    Returns None when the host does not end in a number (it is a name).
    Raises EvalError when it does but is no valid address (`1.2.3.999`).
    """
    parts = host.split(".")
    if not _NUMERIC_LABEL.match(parts[-1]):
        return None
    if len(parts) > 4:
        raise EvalError("host ends in a number but is not an IPv4 address")
    numbers: list[int] = []
    for part in parts:
        if len(part) > 16:
            raise EvalError("IPv4 component too long")
        if part[:2] in ("0x", "0X"):
            digits, base = part[2:] or "0", 16
        elif len(part) > 1 and part.startswith("0"):
            digits, base = part[1:], 8
        else:
            digits, base = part, 10
        try:
            numbers.append(int(digits, base))
        except ValueError:
            raise EvalError(f"{part!r} is not an IPv4 component") from None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise EvalError("IPv4 component out of range")
    value = last
    for index, number in enumerate(head):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def parse_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError:
            raise EvalError("malformed IPv6 literal") from None
        mapped = address.ipv4_mapped
        return mapped if mapped is not None else address
    return parse_ipv4(host)


def normalise_host(host: str) -> str:
    """Canonical form of a host: IP literals as the address, names as IDNA A-labels.

    Raises:
        EvalError: The host is empty, percent-encoded, or not a valid name or address.
    """
    if not host or "%" in host or any(ord(c) <= 0x20 or c in "\\/@\x7f" for c in host):
        raise EvalError("host is empty or contains forbidden characters")
    if not host.isascii():
        # IDNA first: UTS #46 maps full-width digits and dots ("１６９。２５４...")
        # to ASCII, so the result must still be checked for an IP literal.
        try:
            host = idna.encode(host.removesuffix("."), uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise EvalError(f"host fails IDNA: {exc}") from None
    host = host.lower()
    if host.endswith(".") and not host.startswith("["):
        host = host[:-1]
    ip = parse_ip(host)
    if ip is not None:
        return str(ip)
    if len(host) > 253 or not all(_LABEL.match(label) for label in host.split(".")):
        raise EvalError("host is not a valid DNS name")
    return host


def normalise_host_pattern(pattern: str) -> str:
    """Normalise a host glob from a policy file the way argument hosts are.

    Raises:
        ValueError: The pattern is not a host, an IP literal or a glob of one.
    """
    try:
        if "*" not in pattern and "?" not in pattern:
            return normalise_host(pattern)
        labels = pattern.lower().removesuffix(".").split(".")
        return ".".join(
            label if ("*" in label or "?" in label) else normalise_host(label) for label in labels
        )
    except EvalError as exc:
        raise ValueError(f"host {pattern!r}: {exc}") from None


class ParsedUrl(NamedTuple):
    """A URL after the checks and normalisation the `url` operator applies."""

    scheme: str
    host: str
    port: int | None


def parse_url(text: str) -> ParsedUrl:
    """Split and normalise a URL, refusing the forms that hide where it goes.

    Raises:
        EvalError: Control characters, spaces, backslashes, userinfo, no host,
            a bad port or a bad host.
    """
    if len(text) > _URL_MAX:
        raise EvalError("URL too long")
    if any(ord(c) <= 0x20 or c in "\\\x7f" for c in text):
        raise EvalError("URL contains a space, control character or backslash")
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise EvalError(f"malformed URL: {exc}") from None
    scheme = parts.scheme.lower()
    netloc = parts.netloc
    if "@" in netloc:
        raise EvalError("URL carries userinfo (user@host)")
    if netloc.startswith("["):
        end = netloc.find("]")
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")):
            raise EvalError("malformed IPv6 host")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_raw = netloc.partition(":")
        port_text = port_text_raw if colon else None
    port = _DEFAULT_PORTS.get(scheme)
    if port_text:
        if not port_text.isascii() or not port_text.isdecimal() or len(port_text) > 5:
            raise EvalError("malformed port")
        port = int(port_text)
        if not 0 < port <= 65535:
            raise EvalError("port out of range")
    return ParsedUrl(scheme, normalise_host(host), port)


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address can reach through a translator or tunnel."""
    found: list[ipaddress.IPv4Address] = []
    packed = int(address)
    if address in _NAT64 or (address in _V4_COMPAT and packed > 1):
        found.append(ipaddress.IPv4Address(packed & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.append(address.teredo[1])
    return found


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V4_COMPAT = ipaddress.IPv6Network("::/96")


# --------------------------------------------------------------------------- regex

_sre_parser: Any = importlib.import_module("re._parser")
_sre: Any = importlib.import_module("re._constants")
_NOT_CATEGORIES = frozenset(
    {_sre.CATEGORY_NOT_DIGIT, _sre.CATEGORY_NOT_SPACE, _sre.CATEGORY_NOT_WORD}
)


# ECMA-262's `\s` (its WhiteSpace and LineTerminator characters) and the rest
# of Unicode, as character-class bodies for `re`.
_ECMA_SPACE = r"\t-\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_ECMA_NON_SPACE = (
    r"\x00-\x08\x0e-\x1f!-\x9f\xa1-\u167f\u1681-\u1fff\u200b-\u2027\u202a-\u202e"
    r"\u2030-\u205e\u2060-\u2fff\u3001-\ufefe\uff00-\U0010ffff"
)
_REFUSED_FLAGS = {re.MULTILINE: "(?m)", re.VERBOSE: "(?x)"}  # and (?u), which re.ASCII refuses
_WIDE_RANGE = 512  # a class range this wide is treated as "any character"


def compile_regex(pattern: str) -> re.Pattern[str]:
    """Compile a policy regex after refusing patterns that can backtrack for ever.

    The syntax is Python's (possessive quantifiers and atomic groups keep a
    pattern safe), the meaning ECMA-262's, as in a tool schema's `pattern`:
    `\\d`, `\\w` and `\\b` are ASCII, `\\s` is ECMA-262's whitespace, `$` is
    the end of the value (never before a final newline), and `(?i)` folds
    ASCII letters only. `(?m)`, `(?x)` and `(?u)` are refused.

    Raises:
        ValueError: The pattern does not compile or is unsafe; the message says
            how to rewrite it.
    """
    try:
        refused = _refused_flag(_sre_parser.parse(pattern))
        ecma = _ecma_meaning(pattern)
        compiled = re.compile(ecma, re.ASCII)
        parsed = _sre_parser.parse(ecma, re.ASCII)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ValueError(f"bad regex {pattern!r}: {exc}") from None
    except ValueError:  # re.ASCII with an inline (?u)
        refused = "(?u)"
    if refused is not None:
        raise ValueError(
            f"bad regex {pattern!r}: {refused} is not supported; a policy regex is one line "
            "matched as a whole"
        )
    wild = _check_regex(parsed.data, in_repeat=False)
    if wild > 2:
        raise ValueError(
            f"regex {pattern!r} chains {wild} unbounded wildcard repeats (.*, [^x]*); more than "
            "two in a row can take polynomial time — use narrower classes or possessive ones"
        )
    return compiled


def _refused_flag(parsed: Any) -> str | None:
    """`(?m)` or `(?x)` if the pattern sets either, anywhere."""
    flags = parsed.state.flags
    stack = [parsed.data]
    while stack:
        for op, av in stack.pop():
            if op is _sre.SUBPATTERN:
                flags |= av[1]
            stack.extend(_children(op, av))
    return next((spelling for flag, spelling in _REFUSED_FLAGS.items() if flags & flag), None)


def _children(op: Any, av: Any) -> list[Any]:
    if op is _sre.SUBPATTERN:
        return [av[3].data]
    if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
        return [av[2].data]
    if op is _sre.ATOMIC_GROUP:
        return [av.data]
    if op is _sre.BRANCH:
        return [branch.data for branch in av[1]]
    if op in (_sre.ASSERT, _sre.ASSERT_NOT):
        return [av[1].data]
    if op is _sre.GROUPREF_EXISTS:
        return [branch.data for branch in av[1:] if branch is not None]
    return []


def _ecma_meaning(pattern: str) -> str:
    """`pattern` with `\\s`, `\\S` and `$` spelled out as ECMA-262 means them.

    `re.ASCII` gives `\\d`, `\\w` and `\\b` their ECMA-262 meaning but makes
    `\\s` ASCII-only; ECMA-262's `\\s` also covers U+00A0, U+2028, U+FEFF...
    """
    out: list[str] = []
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            escape = pattern[index : index + 2]
            if escape == r"\s":
                escape = _ECMA_SPACE if in_class else f"[{_ECMA_SPACE}]"
            elif escape == r"\S":
                escape = _ECMA_NON_SPACE if in_class else f"[^{_ECMA_SPACE}]"
            out.append(escape)
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            # a `^` and then a `]` right after the opening bracket are literal
            start = index + 1 + pattern.startswith("^", index + 1)
            start += pattern.startswith("]", start)
            out.append(pattern[index:start])
            index, in_class = start, True
            continue
        elif pattern.startswith("(?#", index):  # a comment, up to the first `)`
            end = pattern.find(")", index)
            end = len(pattern) if end == -1 else end + 1
            out.append(pattern[index:end])
            index = end
            continue
        elif char == "$":
            char = r"\Z"
        out.append(char)
        index += 1
    return "".join(out)


def _is_variable(lo: int, hi: int) -> bool:
    return hi != lo and (hi is _sre.MAXREPEAT or hi > 32)


def _check_regex(items: Iterable[tuple[Any, Any]], *, in_repeat: bool) -> int:
    """Walk a parsed pattern, raising on unsafe shapes.

    Returns:
        The most unbounded wildcard repeats one match can pass through in
        sequence (alternatives count their worst branch, not their sum).
    """
    wild = 0
    for op, av in items:
        if op in (_sre.GROUPREF, _sre.GROUPREF_EXISTS):
            raise ValueError("backreferences can take exponential time; rewrite without them")
        if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT):
            lo, hi, body = av
            variable = _is_variable(lo, hi)
            if variable and in_repeat:
                raise ValueError(
                    "nested quantifiers like (a+)+ can backtrack exponentially; make the "
                    "outer one possessive (*+, ++) or wrap it in an atomic group (?>...)"
                )
            if variable:
                _check_branches(body.data)
            inner = _check_regex(body.data, in_repeat=in_repeat or variable)
            if hi is _sre.MAXREPEAT:
                wild += inner + (1 if _is_wild(body.data) else 0)
            else:  # a fixed count repeats its body's wildcards in sequence
                wild += inner * hi
        elif op in (_sre.POSSESSIVE_REPEAT, _sre.ATOMIC_GROUP):
            body = av[2] if op is _sre.POSSESSIVE_REPEAT else av
            _check_regex(body.data, in_repeat=False)  # no backtracking into it
        elif op is _sre.SUBPATTERN:
            wild += _check_regex(av[3].data, in_repeat=in_repeat)
        elif op is _sre.BRANCH:
            wild += max(_check_regex(branch.data, in_repeat=in_repeat) for branch in av[1])
        elif op in (_sre.ASSERT, _sre.ASSERT_NOT):
            wild += _check_regex(av[1].data, in_repeat=in_repeat)
    return wild


def _check_branches(items: Sequence[tuple[Any, Any]]) -> None:
    """Refuse a quantified alternation whose branches can start alike: `(a|ab)*`."""
    for op, av in items:
        if op is _sre.SUBPATTERN:
            _check_branches(av[3].data)
        elif op is _sre.BRANCH:
            seen: set[int] = set()
            for branch in av[1]:
                first = _first_chars(branch.data)
                if first is None or first & seen:
                    raise ValueError(
                        "a repeated alternation whose branches can start with the same "
                        "character can backtrack exponentially; use a character class or a "
                        "possessive quantifier"
                    )
                seen |= first


def _is_wild(items: Sequence[tuple[Any, Any]]) -> bool:
    """True for a repeat body that matches nearly anything: `.`, `[^x]`, `\\S`."""
    if len(items) != 1:
        return False
    op, av = items[0]
    if op in (_sre.ANY, _sre.NOT_LITERAL):
        return True
    if op is _sre.IN:  # `\\S` inside a class is a range over most of Unicode
        return any(
            kind is _sre.NEGATE
            or (kind is _sre.CATEGORY and value in _NOT_CATEGORIES)
            or (kind is _sre.RANGE and value[1] - value[0] >= _WIDE_RANGE)
            for kind, value in av
        )
    if op is _sre.SUBPATTERN:
        return _is_wild(av[3].data)
    return False


def _cased(code: int) -> set[int]:
    """A character and its one-character case variants."""
    char = chr(code)
    return {code} | {ord(c) for c in (char.lower(), char.upper()) if len(c) == 1}


def _first_chars(items: Sequence[tuple[Any, Any]]) -> set[int] | None:
    """Characters a sequence can start with; None when unknown or unbounded."""
    if not items:
        return None
    op, av = items[0]
    if op is _sre.LITERAL:
        return _cased(av)
    if op is _sre.IN:
        chars: set[int] = set()
        for kind, value in av:
            if kind is _sre.LITERAL:
                chars |= _cased(value)
            elif kind is _sre.RANGE and value[1] - value[0] < _WIDE_RANGE:
                chars |= set(range(value[0], value[1] + 1))
            else:  # NEGATE, CATEGORY, huge ranges: treat as anything
                return None
        return chars
    if op is _sre.SUBPATTERN:
        return _first_chars(av[3].data)
    if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT) and av[0] > 0:
        return _first_chars(av[2].data)
    return None  # ANY, categories, optional items, anchors: could be anything
