"""A compiled yes/no check of a draft 2020-12 schema: the gate's fast path to "valid".

jsonschema stays the authority. Its validator walks a schema through one
generator per keyword and builds a new validator object at every level it
descends into (~30 µs for a three-property tool call on the development
machine); a valid call, by far the common case, needs none of the error
objects it can produce. `compile_check` turns a schema into nested closures,
built once, that answer only "valid or not" (~2 µs for the same call). The
gate accepts a call when the check says valid, and asks jsonschema in every
other case, so every rejection and its messages still come from jsonschema.

A schema compiles only when every keyword in it is one this module implements
with jsonschema's exact reading (the keyword functions of `jsonschema._keywords`
and `runtime.schema.keywords`: ECMA-262 patterns, the same strict format
checker, the same equality for `enum`, `const` and `uniqueItems`). Anything
else (another draft, `$id`, anchors, `$dynamicRef`, `unevaluated*`, a `$ref`
that is not a JSON pointer into the schema itself, a keyword it does not
know) makes `compile_check` return None, and jsonschema alone decides.
`tests/conformance` checks both on the JSON Schema Test Suite and the gate's
own cases: they must give the same verdict on every instance.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

import jsonschema
from jsonschema._utils import equal, uniq  # the reference's own equality
from jsonschema.protocols import Validator

from runtime.schema.ecma_regex import ecma_searcher
from runtime.schema.validator import validator_class

__all__ = ["Check", "compile_check"]

#: True when the instance is valid.
Check = Callable[[Any], bool]

# Keywords that move the base URI or name a place a `$ref` may reach: with any
# of them in a schema, resolving a reference is jsonschema's job.
_RESOLUTION_KEYWORDS = frozenset(
    {"$id", "$anchor", "$dynamicAnchor", "$dynamicRef", "$recursiveRef", "$recursiveAnchor"}
)
_DEFAULT_DIALECT = validator_class({})
# What `_Compiler._object_shape` checks in one go.
_SHAPE_KEYWORDS = frozenset({"type", "properties", "required", "additionalProperties"})


class _Unsupported(Exception):
    """The schema holds something this module does not read exactly as jsonschema does."""


def compile_check(validator: Validator) -> Check | None:
    """A fast validity check equivalent to `validator.is_valid`, or None.

    Args:
        validator: A validator from `runtime.schema.schema_validator`; its
            schema, draft and format checker are the ones compiled.

    Returns:
        A function answering whether an instance is valid, or None when the
        schema uses something only jsonschema reads (use `validator` then).
        The function may raise where jsonschema would: its caller should then
        ask `validator`.
    """
    schema = validator.schema
    if type(validator) is not _DEFAULT_DIALECT or validator_class(schema) is not _DEFAULT_DIALECT:
        return None
    if _mentions(schema, _RESOLUTION_KEYWORDS):
        return None
    try:
        return _Compiler(schema, getattr(validator, "format_checker", None)).compile(
            schema, at_root=True
        )
    except _Unsupported:
        return None


def _mentions(node: Any, keys: frozenset[str]) -> bool:
    """Whether any object anywhere in `node` has one of `keys` (values included: cautious)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not keys.isdisjoint(item):
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


# -- types (draft 2020-12's type checker) ----------------------------------------------


def _is_number(x: Any) -> bool:
    kind = type(x)
    if kind is int or kind is float:
        return True
    return not isinstance(x, bool) and isinstance(x, numbers.Number)


def _is_integer(x: Any) -> bool:
    kind = type(x)
    if kind is int:
        return True
    if kind is float:
        return bool(x.is_integer())
    if isinstance(x, bool):
        return False
    return isinstance(x, int) or (isinstance(x, float) and x.is_integer())


def _is_string(x: Any) -> bool:
    return isinstance(x, str)


def _is_object(x: Any) -> bool:
    return isinstance(x, dict)


def _is_array(x: Any) -> bool:
    return isinstance(x, list)


def _is_boolean(x: Any) -> bool:
    return isinstance(x, bool)


def _is_null(x: Any) -> bool:
    return x is None


_TYPES: dict[str, Check] = {
    "array": _is_array,
    "boolean": _is_boolean,
    "integer": _is_integer,
    "null": _is_null,
    "number": _is_number,
    "object": _is_object,
    "string": _is_string,
}


def _always(x: Any) -> bool:
    return True


def _never(x: Any) -> bool:
    return False


def _all(checks: list[Check]) -> Check:
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda x: first(x) and second(x)
    ordered = tuple(checks)

    def every(x: Any) -> bool:
        for check in ordered:  # noqa: SIM110 - all() over a generator costs more here
            if not check(x):
                return False
        return True

    return every


# -- the compiler ------------------------------------------------------------------------

# A keyword's check with its rank: cheap, discriminating checks run first
# (a wrong type fails fastest), then nested ones, then combinators.
Ranked = tuple[int, Check]
Builder = Callable[["_Compiler", Any, Mapping[str, Any]], "Ranked | None"]


class _Compiler:
    """Compiles one schema document; `$ref`s are resolved as pointers into it."""

    def __init__(self, root: Any, format_checker: jsonschema.FormatChecker | None) -> None:
        self.root = root
        self.format_checker = format_checker
        self._targets: dict[int, Check] = {}

    def compile(self, schema: Any, *, at_root: bool = False) -> Check:
        if schema is True:
            return _always
        if schema is False:
            return _never
        if not isinstance(schema, dict):
            raise _Unsupported(f"a schema that is a {type(schema).__name__}")
        if "$schema" in schema and not at_root:
            raise _Unsupported("a subschema that names its draft")
        ranked: list[Ranked] = []
        shape = self._object_shape(schema)
        if shape is not None:
            ranked.append((0, shape))
        for keyword, value in schema.items():
            if keyword not in _DEFAULT_DIALECT.VALIDATORS:
                continue  # annotations, $defs, unknown keywords: jsonschema ignores them too
            if shape is not None and keyword in _SHAPE_KEYWORDS:
                continue
            builder = _BUILDERS.get(keyword)
            if builder is None:
                raise _Unsupported(keyword)
            built = builder(self, value, schema)
            if built is not None:
                ranked.append(built)
        ranked.sort(key=lambda pair: pair[0])
        return _all([check for _, check in ranked])

    def _object_shape(self, schema: dict[str, Any]) -> Check | None:
        """`type: object` with `properties`, `required` and a boolean
        `additionalProperties` as one check: the shape of every tool's parameters.

        The same verdict as the four keywords apart, with one call per
        property instead of one per keyword. None for any other shape.
        """
        properties = schema.get("properties")
        additional = schema.get("additionalProperties", True)
        required = schema.get("required", [])
        if (
            schema.get("type") != "object"
            or not isinstance(properties, dict)
            or "patternProperties" in schema  # additionalProperties then depends on it
            or (additional is not True and additional is not False)
            or not isinstance(required, list)
        ):
            return None
        checks = {name: self.compile(sub) for name, sub in properties.items()}
        names = tuple(required)
        known = frozenset(checks)
        closed = additional is False

        def shape(x: Any) -> bool:
            if not isinstance(x, dict):
                return False
            for name in names:
                if name not in x:
                    return False
            if closed and not known.issuperset(x):
                return False
            for name, value in x.items():
                sub = checks.get(name)
                if sub is not None and not sub(value):
                    return False
            return True

        return shape

    def reference(self, ref: Any) -> Check:
        if not isinstance(ref, str) or not ref.startswith("#") or "%" in ref:
            raise _Unsupported(f"$ref {ref!r}")
        pointer = ref[1:]
        if pointer and not pointer.startswith("/"):
            raise _Unsupported(f"$ref {ref!r} (an anchor)")
        target = self.root
        for token in pointer.split("/")[1:]:
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and token in target:
                target = target[token]
            elif isinstance(target, list) and token.isdecimal() and int(token) < len(target):
                target = target[int(token)]
            else:
                raise _Unsupported(f"$ref {ref!r} does not resolve")
        key = id(target)
        targets = self._targets
        if key not in targets:
            targets[key] = _never  # placeholder while a recursive schema compiles
            targets[key] = self.compile(target, at_root=target is self.root)
        return lambda x: targets[key](x)


# -- keywords, each as jsonschema (with runtime.schema.keywords) reads it -----------------


def _type(compiler: _Compiler, types: Any, schema: Mapping[str, Any]) -> Ranked:
    names = types if isinstance(types, list) else [types]
    try:
        predicates = [_TYPES[name] for name in names]
    except (KeyError, TypeError):
        raise _Unsupported(f"type {types!r}") from None
    if len(predicates) == 1:
        return (0, predicates[0])
    options = tuple(predicates)
    return (0, lambda x: any(p(x) for p in options))


def _enum(compiler: _Compiler, enums: Any, schema: Mapping[str, Any]) -> Ranked:
    if not isinstance(enums, list):
        raise _Unsupported("enum that is not an array")
    members = tuple(enums)
    # `equal` compares a string with anything by `==`: only string members can match one.
    strings = frozenset(e for e in members if isinstance(e, str))

    def check(x: Any) -> bool:
        if type(x) is str:
            return x in strings
        return any(equal(each, x) for each in members)

    return (1, check)


def _const(compiler: _Compiler, const: Any, schema: Mapping[str, Any]) -> Ranked:
    return (1, lambda x: bool(equal(x, const)))


def _properties(compiler: _Compiler, properties: Any, schema: Mapping[str, Any]) -> Ranked:
    if not isinstance(properties, dict):
        raise _Unsupported("properties that is not an object")
    checks = {name: compiler.compile(sub) for name, sub in properties.items()}

    def check(x: Any) -> bool:
        if not isinstance(x, dict):
            return True
        if len(x) <= len(checks):
            for name, value in x.items():
                sub = checks.get(name)
                if sub is not None and not sub(value):
                    return False
        else:
            for name, sub in checks.items():
                if name in x and not sub(x[name]):
                    return False
        return True

    return (2, check)


def _required(compiler: _Compiler, required: Any, schema: Mapping[str, Any]) -> Ranked:
    names = tuple(required)
    return (1, lambda x: not isinstance(x, dict) or all(n in x for n in names))


def _pattern_checks(schema: Mapping[str, Any]) -> tuple[Check, ...]:
    patterns = schema.get("patternProperties", {})
    if not isinstance(patterns, dict):
        raise _Unsupported("patternProperties that is not an object")
    return tuple(ecma_searcher(pattern) for pattern in patterns)


def _additional_properties(
    compiler: _Compiler, additional: Any, schema: Mapping[str, Any]
) -> Ranked | None:
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        raise _Unsupported("properties that is not an object")
    known = frozenset(properties)
    searches = _pattern_checks(schema)

    def extras(x: dict[Any, Any]) -> list[Any]:
        return [
            key for key in x if key not in known and not any(search(key) for search in searches)
        ]

    if isinstance(additional, dict):
        sub = compiler.compile(additional)
        return (2, lambda x: not isinstance(x, dict) or all(sub(x[key]) for key in extras(x)))
    if additional:
        return None
    if not searches:
        return (1, lambda x: not isinstance(x, dict) or known.issuperset(x))
    return (1, lambda x: not isinstance(x, dict) or not extras(x))


def _pattern_properties(compiler: _Compiler, patterns: Any, schema: Mapping[str, Any]) -> Ranked:
    pairs = tuple(
        (ecma_searcher(pattern), compiler.compile(sub)) for pattern, sub in patterns.items()
    )

    def check(x: Any) -> bool:
        if not isinstance(x, dict):
            return True
        for search, sub in pairs:
            for key, value in x.items():
                if search(key) and not sub(value):
                    return False
        return True

    return (2, check)


def _property_names(compiler: _Compiler, names: Any, schema: Mapping[str, Any]) -> Ranked:
    sub = compiler.compile(names)
    return (2, lambda x: not isinstance(x, dict) or all(sub(key) for key in x))


def _min_properties(compiler: _Compiler, bound: Any, schema: Mapping[str, Any]) -> Ranked:
    return (1, lambda x: not isinstance(x, dict) or not len(x) < bound)


def _max_properties(compiler: _Compiler, bound: Any, schema: Mapping[str, Any]) -> Ranked:
    return (1, lambda x: not isinstance(x, dict) or not len(x) > bound)


def _dependent_required(compiler: _Compiler, deps: Any, schema: Mapping[str, Any]) -> Ranked:
    pairs = tuple((name, tuple(needed)) for name, needed in deps.items())
    return (
        1,
        lambda x: (
            not isinstance(x, dict)
            or all(name not in x or all(n in x for n in needed) for name, needed in pairs)
        ),
    )


def _dependent_schemas(compiler: _Compiler, deps: Any, schema: Mapping[str, Any]) -> Ranked:
    pairs = tuple((name, compiler.compile(sub)) for name, sub in deps.items())
    return (
        2,
        lambda x: not isinstance(x, dict) or all(name not in x or sub(x) for name, sub in pairs),
    )


def _items(compiler: _Compiler, items: Any, schema: Mapping[str, Any]) -> Ranked:
    prefix = len(schema.get("prefixItems", []))
    if items is False:
        return (1, lambda x: not isinstance(x, list) or len(x) <= prefix)
    sub = compiler.compile(items)
    return (
        2,
        lambda x: not isinstance(x, list) or all(sub(x[i]) for i in range(prefix, len(x))),
    )


def _prefix_items(compiler: _Compiler, prefix: Any, schema: Mapping[str, Any]) -> Ranked:
    subs = tuple(compiler.compile(sub) for sub in prefix)
    return (
        2,
        lambda x: (
            not isinstance(x, list) or all(sub(item) for sub, item in zip(subs, x, strict=False))
        ),
    )


def _contains(compiler: _Compiler, contains: Any, schema: Mapping[str, Any]) -> Ranked:
    sub = compiler.compile(contains)
    min_contains = schema.get("minContains", 1)
    max_contains = schema.get("maxContains")

    def check(x: Any) -> bool:
        if not isinstance(x, list):
            return True
        most = len(x) if max_contains is None else max_contains
        matches = 0
        for item in x:
            if sub(item):
                matches += 1
                if matches > most:
                    return False
        return not matches < min_contains

    return (2, check)


def _min_items(compiler: _Compiler, bound: Any, schema: Mapping[str, Any]) -> Ranked:
    return (1, lambda x: not isinstance(x, list) or not len(x) < bound)


def _max_items(compiler: _Compiler, bound: Any, schema: Mapping[str, Any]) -> Ranked:
    return (1, lambda x: not isinstance(x, list) or not len(x) > bound)


def _unique_items(compiler: _Compiler, unique: Any, schema: Mapping[str, Any]) -> Ranked | None:
    if not unique:
        return None
    return (2, lambda x: not isinstance(x, list) or bool(uniq(x)))


def _min_length(compiler: _Compiler, bound: Any, schema: Mapping[str, Any]) -> Ranked:
    return (1, lambda x: not isinstance(x, str) or not len(x) < bound)


def _max_length(compiler: _Compiler, bound: Any, schema: Mapping[str, Any]) -> Ranked:
    return (1, lambda x: not isinstance(x, str) or not len(x) > bound)


def _pattern(compiler: _Compiler, pattern: Any, schema: Mapping[str, Any]) -> Ranked:
    search = ecma_searcher(pattern)
    return (2, lambda x: not isinstance(x, str) or search(x))


def _format(compiler: _Compiler, name: Any, schema: Mapping[str, Any]) -> Ranked | None:
    checker = compiler.format_checker
    if checker is None or name not in checker.checkers:
        return None  # an unknown format only annotates
    return (2, lambda x: checker.conforms(x, name))


def _minimum(compiler: _Compiler, bound: Any, schema: Mapping[str, Any]) -> Ranked:
    return (1, lambda x: not _is_number(x) or not x < bound)


def _maximum(compiler: _Compiler, bound: Any, schema: Mapping[str, Any]) -> Ranked:
    return (1, lambda x: not _is_number(x) or not x > bound)


def _exclusive_minimum(compiler: _Compiler, bound: Any, schema: Mapping[str, Any]) -> Ranked:
    return (1, lambda x: not _is_number(x) or not x <= bound)


def _exclusive_maximum(compiler: _Compiler, bound: Any, schema: Mapping[str, Any]) -> Ranked:
    return (1, lambda x: not _is_number(x) or not x >= bound)


def _multiple_of(compiler: _Compiler, divisor: Any, schema: Mapping[str, Any]) -> Ranked:
    def check(x: Any) -> bool:
        if not _is_number(x):
            return True
        if isinstance(divisor, float):
            quotient = x / divisor
            try:
                failed = int(quotient) != quotient
            except OverflowError:
                failed = (Fraction(x) / Fraction(divisor)).denominator != 1
        else:
            failed = x % divisor
        return not failed

    return (1, check)


def _all_of(compiler: _Compiler, subschemas: Any, schema: Mapping[str, Any]) -> Ranked:
    return (3, _all([compiler.compile(sub) for sub in subschemas]))


def _any_of(compiler: _Compiler, subschemas: Any, schema: Mapping[str, Any]) -> Ranked:
    subs = tuple(compiler.compile(sub) for sub in subschemas)
    return (3, lambda x: any(sub(x) for sub in subs))


def _one_of(compiler: _Compiler, subschemas: Any, schema: Mapping[str, Any]) -> Ranked:
    subs = tuple(compiler.compile(sub) for sub in subschemas)

    def check(x: Any) -> bool:
        found = False
        for sub in subs:
            if sub(x):
                if found:
                    return False
                found = True
        return found

    return (3, check)


def _not(compiler: _Compiler, negated: Any, schema: Mapping[str, Any]) -> Ranked:
    sub = compiler.compile(negated)
    return (3, lambda x: not sub(x))


def _if(compiler: _Compiler, condition: Any, schema: Mapping[str, Any]) -> Ranked:
    test = compiler.compile(condition)
    then = compiler.compile(schema["then"]) if "then" in schema else _always
    otherwise = compiler.compile(schema["else"]) if "else" in schema else _always
    return (3, lambda x: then(x) if test(x) else otherwise(x))


def _ref(compiler: _Compiler, ref: Any, schema: Mapping[str, Any]) -> Ranked:
    return (3, compiler.reference(ref))


_BUILDERS: dict[str, Builder] = {
    "$ref": _ref,
    "additionalProperties": _additional_properties,
    "allOf": _all_of,
    "anyOf": _any_of,
    "const": _const,
    "contains": _contains,
    "dependentRequired": _dependent_required,
    "dependentSchemas": _dependent_schemas,
    "enum": _enum,
    "exclusiveMaximum": _exclusive_maximum,
    "exclusiveMinimum": _exclusive_minimum,
    "format": _format,
    "if": _if,
    "items": _items,
    "maxItems": _max_items,
    "maxLength": _max_length,
    "maxProperties": _max_properties,
    "maximum": _maximum,
    "minItems": _min_items,
    "minLength": _min_length,
    "minProperties": _min_properties,
    "minimum": _minimum,
    "multipleOf": _multiple_of,
    "not": _not,
    "oneOf": _one_of,
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "prefixItems": _prefix_items,
    "properties": _properties,
    "propertyNames": _property_names,
    "required": _required,
    "type": _type,
    "uniqueItems": _unique_items,
}
