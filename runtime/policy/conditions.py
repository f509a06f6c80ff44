"""Condition operators and evaluator nodes, compiled once and run on every call.

Evaluation is three-valued: `TRUE`, `FALSE` or `ERROR`.

- A **missing** field (absent argument, unset context value) makes its field
  test `FALSE`, in every rule: a condition about something the call does not
  carry does not hold. `exists: true` requires presence, `exists: false`
  absence. (`not` flips such a `FALSE` to `TRUE`, as a negated operator does
  in IAM and `not` does in Rego.)
- A **present** value that cannot be judged (wrong type, NaN, NUL in a path,
  an unparsable URL or IP, a URL with userinfo, a regex on a number or on a
  string too long to match safely) is an `ERROR`.

`all`/`any`/`not` combine values with Kleene logic (`FALSE` wins an `all`,
`TRUE` wins an `any`, `not ERROR` is `ERROR`). The engine then fails closed
both ways: `ERROR` counts as a match for deny and require_approval rules and
as no match for allow rules.

Normalisation, so one address or path cannot hide behind another spelling:

- `path_under`: `\\` is read as `/`, `.`/`..` are resolved lexically, a path
  that climbs above its start is not under anything, roots compare by whole
  segments (`/workspace-evil` is not under `/workspace`), NUL is `ERROR`,
  and a path containing percent-escapes must be under a root both as written
  and after each round of decoding (`%2e%2e/etc` is `../etc`). Symlinks are
  not resolved: the tool itself must not follow links out of its root.
- hosts (`url`, `ip_in`): lower-cased, one trailing dot dropped, IDNA
  (UTS #46) applied; IPv4 literals are read as `inet_aton` and URL parsers
  read them (decimal `2852039166`, hex `0xA9FEA9FE`, octal `0251.0376...`,
  short forms `169.254.43518`), IPv4-mapped IPv6 denotes the IPv4 address.
  Percent-escapes, control characters, spaces and backslashes in a URL, and
  userinfo (`user@host`), make it `ERROR`.

Regular expressions are written in Python's syntax and read with ECMA-262's
meaning, as a tool schema's `pattern` is (`compile_regex`): `\\d`, `\\w`, `\\b`
are ASCII, `\\s` is ECMA-262's whitespace, `$` is the end of the value. Only
`.` keeps Python's reach (everything but `\\n`), so a deny rule's `.*` spans
`\\r` and U+2028.

Python's `re` has no timeout and holds the GIL while it
backtracks, so a timeout cannot be enforced from inside the process. Instead
`compile_regex` refuses, at load, patterns whose backtracking can explode:
backreferences, nested variable quantifiers (`(a+)+`) and quantified
alternations whose branches can start with the same character (`(a|ab)*`)
unless possessive (`*+`) or atomic (`(?>...)`), and more than two unbounded
wildcard repeats (`.*a.*b.*c` is cubic). At run time a value longer than
`REGEX_MAX_INPUT` characters is not matched at all (`ERROR`: a deny rule
matches, an allow rule does not). What remains is at worst quadratic in 1024
characters, about a millisecond.
"""

from __future__ import annotations

import abc
import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any, Final

from runtime.calls import CallContext
from runtime.policy.normalise import (
    EvalError,
    compile_regex,
    embedded_ipv4,
    normalise_host,
    normalise_host_pattern,
    normalise_root,
    parse_ip,
    parse_url,
    path_variants,
    split_path,
)

__all__ = [
    "ERROR",
    "FALSE",
    "REGEX_MAX_INPUT",
    "TRUE",
    "AllNode",
    "AnyNode",
    "EvalError",
    "FieldTest",
    "Node",
    "NotNode",
    "build_field_test",
    "compile_regex",
    "is_missing",
    "lookup",
    "normalise_host",
    "normalise_host_pattern",
    "normalise_root",
]

TRUE: Final = 1
FALSE: Final = 0
ERROR: Final = 2

#: Longest string the `regex` operator will match; longer is ERROR.
REGEX_MAX_INPUT: Final = 1024
_MISSING: Final = object()
_CONTEXT_ATTRS = frozenset({"tenant", "agent", "conversation_id", "run_id", "principal"})


# --------------------------------------------------------------------------- fields


def lookup(
    arguments: Mapping[str, Any], context: CallContext, source: str, path: Sequence[str]
) -> Any:
    """Read `args.<path>` or `context.<path>`; returns a sentinel when absent."""
    current: Any
    if source == "args":
        current = arguments
        rest: Sequence[str] = path
    else:
        name = path[0]
        if name in _CONTEXT_ATTRS:
            current = getattr(context, name)
        else:
            current = context.extra.get(name, _MISSING)
        if current is None:  # an unset context value is absent, not null
            return _MISSING
        rest = path[1:]
    for segment in rest:
        if type(current) is dict or isinstance(current, Mapping):
            if segment not in current:
                return _MISSING
            current = current[segment]
        elif isinstance(current, list) and segment.isdecimal() and int(segment) < len(current):
            current = current[int(segment)]
        else:
            return _MISSING
    return current


def is_missing(value: Any) -> bool:
    """True for the sentinel `lookup` returns when a field is absent."""
    return value is _MISSING


# --------------------------------------------------------------------------- scalars


def _is_scalar(value: Any) -> bool:
    return value is None or type(value) in (str, int, float, bool)


def _same(a: Any, b: Any) -> bool:
    # Python says True == 1 and 1 == 1.0; policies keep booleans apart from
    # numbers but compare int and float by value.
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    if type(a) in (int, float) and type(b) in (int, float):
        return bool(a == b)
    return type(a) is type(b) and a == b


def _key(value: Any) -> tuple[str, Any]:
    if type(value) is bool:
        return ("b", value)
    if type(value) in (int, float):
        return ("n", value)
    return ("s" if type(value) is str else "z", value)


def _number(value: Any) -> int | float:
    if type(value) not in (int, float):
        raise EvalError(f"expected a number, got {type(value).__name__}")
    number: int | float = value
    return number


def _string(value: Any) -> str:
    if type(value) is not str:
        raise EvalError(f"expected a string, got {type(value).__name__}")
    text: str = value
    return text


# ------------------------------------------------------------------ path and network operators


def _op_path_under(roots: Sequence[str]) -> Callable[[Any], int]:
    compiled = [normalise_root(root) for root in roots]

    def test(value: Any) -> int:
        text = _string(value)
        variants = path_variants(text) if "%" in text else [text]
        for variant in variants:
            if "\x00" in variant:
                raise EvalError("path contains a NUL byte")
            split = split_path(variant)
            if split is None:
                return FALSE
            absolute, segments = split
            if not any(
                absolute == root_abs and segments[: len(root_segs)] == root_segs
                for root_abs, root_segs in compiled
            ):
                return FALSE
        return TRUE

    return test


def _op_url(spec: Any) -> Callable[[Any], int]:
    schemes = frozenset(spec.schemes)
    hosts: tuple[str, ...] | None = tuple(spec.hosts) if spec.hosts is not None else None
    ports = frozenset(spec.ports) if spec.ports is not None else None

    def test(value: Any) -> int:
        text = _string(value)
        scheme = text.partition(":")[0].lower()
        if scheme not in schemes:
            return FALSE  # `file:`, `gopher:` ... are simply not allowed
        parsed = parse_url(text)
        if hosts is not None and not any(fnmatchcase(parsed.host, h) for h in hosts):
            return FALSE
        if ports is not None and parsed.port not in ports:
            return FALSE
        return TRUE

    return test


def _op_ip_in(cidrs: Sequence[str]) -> Callable[[Any], int]:
    networks = [ipaddress.ip_network(cidr) for cidr in cidrs]

    def inside(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address.version == n.version and address in n for n in networks)

    def test(value: Any) -> int:
        text = _string(value)
        host = parse_url(text).host if "://" in text else normalise_host(text)
        address = parse_ip(host)
        if address is None:
            return FALSE  # a name, not an address: pair `ip_in` with a `url` hosts list
        verdicts = {inside(address)}
        if isinstance(address, ipaddress.IPv6Address):
            verdicts.update(inside(v4) for v4 in embedded_ipv4(address))
        if len(verdicts) > 1:
            raise EvalError("address embeds an IPv4 address with a different verdict")
        return TRUE if verdicts.pop() else FALSE

    return test


# --------------------------------------------------------------------------- operators


def _build_op(name: str, arg: Any) -> Callable[[Any], int]:
    if name == "equals":
        return lambda v: (TRUE if _same(v, arg) else FALSE) if _is_scalar(v) else _unknown()
    if name in ("in", "not_in"):
        keys = frozenset(_key(item) for item in arg)
        hit, miss = (TRUE, FALSE) if name == "in" else (FALSE, TRUE)
        return lambda v: (hit if _key(v) in keys else miss) if _is_scalar(v) else _unknown()
    if name == "contains":
        return lambda v: _contains(v, arg)
    if name == "prefix":
        return lambda v: TRUE if _string(v).startswith(arg) else FALSE
    if name == "regex":
        pattern = compile_regex(arg)
        return lambda v: _regex(pattern, v)
    if name in _COMPARE:
        compare = _COMPARE[name]
        return lambda v: TRUE if compare(_number(v), arg) else FALSE
    if name == "max_len":
        return lambda v: TRUE if len(_string(v)) <= arg else FALSE
    if name == "max_items":
        return lambda v: _max_items(v, arg)
    if name == "path_under":
        return _op_path_under(arg)
    if name == "url":
        return _op_url(arg)
    if name == "ip_in":
        return _op_ip_in(arg)
    if name == "exists":
        return lambda v: TRUE if arg else FALSE
    raise ValueError(f"unknown operator {name!r}")


def _unknown() -> int:
    raise EvalError("value is not a scalar")


def _contains(value: Any, needle: Any) -> int:
    if type(value) is str and type(needle) is str:
        return TRUE if needle in value else FALSE
    if type(value) is list:
        for item in value:
            if type(item) is float and not math.isfinite(item):
                raise EvalError("list holds a non-finite number")
            if _same(item, needle):
                return TRUE
        return FALSE
    raise EvalError(f"cannot look inside a {type(value).__name__}")


def _regex(pattern: re.Pattern[str], value: Any) -> int:
    text = _string(value)
    if len(text) > REGEX_MAX_INPUT:
        raise EvalError(f"longer than {REGEX_MAX_INPUT} characters, too long to match safely")
    return TRUE if pattern.fullmatch(text) is not None else FALSE


def _max_items(value: Any, limit: int) -> int:
    if type(value) is not list:
        raise EvalError(f"expected a list, got {type(value).__name__}")
    return TRUE if len(value) <= limit else FALSE


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: bool(a > b),
    "gte": lambda a, b: bool(a >= b),
    "lt": lambda a, b: bool(a < b),
    "lte": lambda a, b: bool(a <= b),
}


# --------------------------------------------------------------------------- nodes


class Node(abc.ABC):
    """A compiled condition: `evaluate` is the hot path, `explain` the slow one."""

    __slots__ = ()

    @abc.abstractmethod
    def evaluate(self, arguments: Mapping[str, Any], context: CallContext) -> int:
        """Return TRUE, FALSE or ERROR."""

    @abc.abstractmethod
    def explain(self, arguments: Mapping[str, Any], context: CallContext) -> tuple[int, list[str]]:
        """Return the result and, unless TRUE, the leaf tests that kept it from TRUE."""

    @abc.abstractmethod
    def describe(self) -> str:
        """The condition as a reviewer wrote it, in one line."""


class FieldTest(Node):
    """`{args.path: {op: value, ...}}`: every operator must hold for the field."""

    __slots__ = ("_if_missing", "_if_nonfinite", "_key", "_tests", "field", "ops", "path", "source")

    def __init__(self, field: str, ops: Sequence[tuple[str, Any, Callable[[Any], int]]]) -> None:
        self.field = field
        source, _, rest = field.partition(".")
        self.source = source
        self.path = tuple(rest.split("."))
        self.ops = tuple(ops)
        self._tests = tuple(test for _, _, test in self.ops)
        # `args.NAME`, the usual field, is read with one dict lookup.
        self._key = self.path[0] if source == "args" and len(self.path) == 1 else None
        exists = [arg for name, arg, _ in self.ops if name == "exists"]
        others = len(self.ops) - len(exists)
        # Absent: only a lone `exists: false` holds; every other operator is false.
        self._if_missing = TRUE if exists == [False] and not others else FALSE
        # A NaN or infinity is present but cannot be compared: `exists` still
        # judges it, every other operator is an evaluation error.
        if exists == [False]:
            self._if_nonfinite = FALSE
        else:
            self._if_nonfinite = ERROR if others else TRUE

    def evaluate(self, arguments: Mapping[str, Any], context: CallContext) -> int:
        if self._key is not None and type(arguments) is dict:
            value = arguments.get(self._key, _MISSING)
        else:
            value = lookup(arguments, context, self.source, self.path)
        if value is _MISSING:
            return self._if_missing
        if type(value) is float and not math.isfinite(value):
            return self._if_nonfinite
        result = TRUE
        for test in self._tests:
            try:
                outcome = test(value)
            except EvalError:
                outcome = ERROR
            if outcome == FALSE:
                return FALSE
            if outcome == ERROR:
                result = ERROR
        return result

    def explain(self, arguments: Mapping[str, Any], context: CallContext) -> tuple[int, list[str]]:
        value = lookup(arguments, context, self.source, self.path)
        result = self.evaluate(arguments, context)
        if result == TRUE:
            return result, []
        if value is _MISSING:
            return result, [f"{self.field}: missing, so it does not hold ({self.describe()})"]
        if type(value) is float and not math.isfinite(value):
            if result == FALSE:  # only `exists: false` judges it, and it is present
                return result, [f"{self.field}: exists False did not hold"]
            return result, [
                f"{self.field}: not a finite number, so it could not be evaluated "
                f"({self.describe()})"
            ]
        failures: list[str] = []
        for name, arg, test in self.ops:
            try:
                outcome = test(value)
            except EvalError as exc:
                failures.append(f"{self.field}: {name} {_show(arg)} could not be evaluated: {exc}")
                continue
            if outcome != TRUE:
                failures.append(f"{self.field}: {name} {_show(arg)} did not hold")
        return result, failures

    def describe(self) -> str:
        ops = ", ".join(f"{name}: {_show(arg)}" for name, arg, _ in self.ops)
        return f"{self.field} {{{ops}}}"


def _show(arg: Any) -> str:
    """An operator argument as a reviewer wrote it (no doubled backslashes)."""
    dump = getattr(arg, "model_dump", None)
    if dump is not None:
        arg = dump(exclude_defaults=True)
    if isinstance(arg, str):
        text = f"'{arg}'"
    elif isinstance(arg, list):
        text = "[" + ", ".join(_show(item) for item in arg) + "]"
    elif isinstance(arg, dict):
        text = "{" + ", ".join(f"{k}: {_show(v)}" for k, v in arg.items()) + "}"
    else:
        text = repr(arg)
    return text if len(text) <= 120 else text[:117] + "..."


class AllNode(Node):
    """Every child holds (Kleene AND)."""

    __slots__ = ("children",)

    def __init__(self, children: Sequence[Node]) -> None:
        self.children = tuple(children)

    def evaluate(self, arguments: Mapping[str, Any], context: CallContext) -> int:
        result = TRUE
        for child in self.children:
            outcome = child.evaluate(arguments, context)
            if outcome == FALSE:
                return FALSE
            if outcome == ERROR:
                result = ERROR
        return result

    def explain(self, arguments: Mapping[str, Any], context: CallContext) -> tuple[int, list[str]]:
        failures: list[str] = []
        for child in self.children:
            outcome, why = child.explain(arguments, context)
            if outcome != TRUE:
                failures.extend(why)
        return self.evaluate(arguments, context), failures

    def describe(self) -> str:
        return "all(" + "; ".join(child.describe() for child in self.children) + ")"


class AnyNode(Node):
    """At least one child holds (Kleene OR)."""

    __slots__ = ("children",)

    def __init__(self, children: Sequence[Node]) -> None:
        self.children = tuple(children)

    def evaluate(self, arguments: Mapping[str, Any], context: CallContext) -> int:
        result = FALSE
        for child in self.children:
            outcome = child.evaluate(arguments, context)
            if outcome == TRUE:
                return TRUE
            if outcome == ERROR:
                result = ERROR
        return result

    def explain(self, arguments: Mapping[str, Any], context: CallContext) -> tuple[int, list[str]]:
        result = self.evaluate(arguments, context)
        if result == TRUE:
            return result, []
        failures = [f"none of: {self.describe()}"]
        for child in self.children:
            failures.extend(child.explain(arguments, context)[1])
        return result, failures

    def describe(self) -> str:
        return "any(" + "; ".join(child.describe() for child in self.children) + ")"


class NotNode(Node):
    """The child does not hold; `not ERROR` stays ERROR."""

    __slots__ = ("child",)

    def __init__(self, child: Node) -> None:
        self.child = child

    def evaluate(self, arguments: Mapping[str, Any], context: CallContext) -> int:
        outcome = self.child.evaluate(arguments, context)
        return ERROR if outcome == ERROR else TRUE - outcome

    def explain(self, arguments: Mapping[str, Any], context: CallContext) -> tuple[int, list[str]]:
        outcome, why = self.child.explain(arguments, context)
        if outcome == FALSE:
            return TRUE, []
        if outcome == TRUE:
            return FALSE, [f"{self.describe()} did not hold"]
        return ERROR, why

    def describe(self) -> str:
        return f"not({self.child.describe()})"


def build_field_test(field: str, operators: Iterable[tuple[str, Any]]) -> FieldTest:
    """Compile one field's operators (name, argument) into a `FieldTest`.

    Raises:
        ValueError: An operator is unknown or its argument is unusable.
    """
    return FieldTest(field, [(name, arg, _build_op(name, arg)) for name, arg in operators])
