"""Binding validated JSON arguments to a tool's Python parameters without pydantic.

A tool whose every parameter is plain JSON (str, int, float, bool, None,
`Any`, lists and string-keyed dicts of those, `Optional` of those, string
`Literal`s, optionally `Annotated` with pydantic `Field` constraints) needs no
model to turn arguments that already passed the gate into Python values: ints
become floats where a float is declared, integral floats become ints where an
int is declared, and everything else passes through. That is exactly what
pydantic's lax mode does for these types (a unit test checks both agree), at
a fraction of the cost, and without building a pydantic model at all, which is
what makes a sandbox worker start fast. Anything else (enums, models,
datetimes, tuples, unions, validators) is left to pydantic.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

Converter = Callable[[Any], Any]

_TRANSFORMING_FIELD_KEYS = frozenset(
    {
        "alias",
        "validation_alias",
        "serialization_alias",
        "default_factory",
        "strict",
        "union_mode",
        "discriminator",
        "coerce_numbers_to_str",
        "fail_fast",
    }
)


def _same(value: Any) -> Any:
    return value


def _to_int(value: Any) -> Any:
    return int(value) if type(value) is float else value


def _to_float(value: Any) -> Any:
    return float(value) if type(value) is int else value


_SCALARS: dict[Any, Converter] = {
    str: _same,
    bool: _same,
    int: _to_int,
    float: _to_float,
    type(None): _same,
    Any: _same,
    list: _same,
    dict: _same,
}


def _plain_metadata(items: tuple[Any, ...]) -> bool:
    """Whether `Annotated` extras only describe or check (never transform) a value."""
    import annotated_types
    from pydantic.fields import FieldInfo

    checks = (
        annotated_types.Gt,
        annotated_types.Ge,
        annotated_types.Lt,
        annotated_types.Le,
        annotated_types.MultipleOf,
        annotated_types.MinLen,
        annotated_types.MaxLen,
    )
    for item in items:
        if type(item) in checks:
            continue
        if isinstance(item, annotated_types.Interval | annotated_types.Len):
            if not _plain_metadata(tuple(item)):
                return False
            continue
        if type(item).__name__ == "_PydanticGeneralMetadata" and set(vars(item)) <= {"pattern"}:
            continue  # Field(pattern=...): a check the gate already made
        if not isinstance(item, FieldInfo):
            return False
        if any(getattr(item, key, None) is not None for key in _TRANSFORMING_FIELD_KEYS):
            return False
        if not _plain_metadata(tuple(item.metadata)):
            return False
    return True


def converter(annotation: Any) -> Converter | None:
    """A pydantic-free converter for one parameter's annotation; None when not plain."""
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        inner = converter(args[0])
        return inner if inner is not None and _plain_metadata(args[1:]) else None
    if origin is typing.Literal:
        return _same if all(isinstance(arg, str) or arg is None for arg in args) else None
    if origin is list and len(args) == 1:
        item = converter(args[0])
        if item is None or item is _same:
            return item
        return _each(item)
    if origin is dict and len(args) == 2 and args[0] is str:
        item = converter(args[1])
        if item is None or item is _same:
            return item
        return _each_value(item)
    if origin in (typing.Union, types.UnionType):
        others = [arg for arg in args if arg is not type(None)]
        if len(others) != 1 or len(args) != 2:
            return None  # a real union: which member wins is pydantic's call
        inner = converter(others[0])
        if inner is None or inner is _same:
            return inner
        return _optional(inner)
    return None


def _each(item: Converter) -> Converter:
    return lambda value: [item(entry) for entry in value]


def _each_value(item: Converter) -> Converter:
    return lambda value: {key: item(entry) for key, entry in value.items()}


def _optional(inner: Converter) -> Converter:
    return lambda value: None if value is None else inner(value)


def plain_binder(hints: Mapping[str, Any]) -> dict[str, Converter] | None:
    """Converters for every parameter, or None when one of them needs pydantic."""
    converters: dict[str, Converter] = {}
    for name, annotation in hints.items():
        found = converter(annotation)
        if found is None:
            return None
        converters[name] = found
    return converters


def bind_plain(converters: Mapping[str, Converter], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Python values for validated arguments; only the names given (defaults stay the function's)."""
    return {name: converters[name](value) for name, value in arguments.items()}
