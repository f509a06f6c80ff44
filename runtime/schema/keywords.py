"""The keywords that match regular expressions, with ECMA-262 in place of Python's `re`.

jsonschema runs `re.search` in four places: `pattern`, `patternProperties`,
`additionalProperties` (which keys no pattern covers) and
`unevaluatedProperties` (which keys a `patternProperties` evaluated). Each is
replaced here by the same rule over `ecma_search`; errors read as jsonschema's.
Draft 2019-09's `unevaluatedProperties` is left as jsonschema has it (tools
declare 2020-12, or no `$schema`, which means 2020-12).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from jsonschema import ValidationError

from runtime.schema.ecma_regex import ecma_search

__all__ = ["ECMA_KEYWORDS", "ECMA_KEYWORDS_2020_12"]


def pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not ecma_search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if ecma_search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> set[str]:
    """The keys neither `properties` nor `patternProperties` covers."""
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    return {
        key
        for key in instance
        if key not in properties and not any(ecma_search(p, key) for p in patterns)
    }


def _listed(keys: list[str]) -> tuple[str, str]:
    return ", ".join(repr(key) for key in keys), "was" if len(keys) == 1 else "were"


def additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    extras = sorted(_additional(instance, schema))
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        if "patternProperties" in schema:
            verb = "does" if len(extras) == 1 else "do"
            joined = ", ".join(repr(extra) for extra in extras)
            patterns = ", ".join(repr(p) for p in sorted(schema["patternProperties"]))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: {patterns}")
        else:
            keys, verb = _listed(extras)
            yield ValidationError(
                f"Additional properties are not allowed ({keys} {verb} unexpected)"
            )


def _valid(errors: Iterator[ValidationError]) -> bool:
    return next(errors, None) is None


def _evaluated(validator: Any, instance: Mapping[str, Any], schema: Any) -> set[str]:
    """The keys of `instance` that `schema` (2020-12) evaluates, for `unevaluatedProperties`."""
    if validator.is_type(schema, "boolean"):
        return set()
    keys: set[str] = set()
    for keyword in ("$ref", "$dynamicRef"):
        reference = schema.get(keyword)
        if reference is not None:
            resolved = validator._resolver.lookup(reference)
            target = validator.evolve(schema=resolved.contents, _resolver=resolved.resolver)
            keys |= _evaluated(target, instance, resolved.contents)
    properties = schema.get("properties")
    if validator.is_type(properties, "object"):
        keys |= properties.keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        subschema = schema.get(keyword)
        if subschema is not None:
            keys |= {k for k, v in instance.items() if _valid(validator.descend(v, subschema))}
    patterns = schema.get("patternProperties", {})
    keys |= {k for k in instance if any(ecma_search(p, k) for p in patterns)}
    for key, subschema in schema.get("dependentSchemas", {}).items():
        if key in instance:
            keys |= _evaluated(validator, instance, subschema)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword, ()):
            if _valid(validator.descend(instance, subschema)):
                keys |= _evaluated(validator, instance, subschema)
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            keys |= _evaluated(validator, instance, schema["if"])
            if "then" in schema:
                keys |= _evaluated(validator, instance, schema["then"])
        elif "else" in schema:
            keys |= _evaluated(validator, instance, schema["else"])
    return keys


def unevaluated_properties(
    validator: Any, unevaluated: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    evaluated = _evaluated(validator, instance, schema)
    failing = [
        key
        for key in instance
        if key not in evaluated
        and not _valid(validator.descend(instance[key], unevaluated, path=key, schema_path=key))
    ]
    if not failing:
        return
    if unevaluated is False:
        keys, verb = _listed(sorted(failing))
        yield ValidationError(f"Unevaluated properties are not allowed ({keys} {verb} unexpected)")
    else:
        keys, verb = _listed(failing)
        yield ValidationError(
            "Unevaluated properties are not valid under the given schema "
            f"({keys} {verb} unevaluated and invalid)"
        )


#: Replacements for every draft's keywords of these names.
ECMA_KEYWORDS = {
    "pattern": pattern,
    "patternProperties": pattern_properties,
    "additionalProperties": additional_properties,
}
#: Draft 2020-12's `unevaluatedProperties`, which also matches patterns.
ECMA_KEYWORDS_2020_12 = {**ECMA_KEYWORDS, "unevaluatedProperties": unevaluated_properties}
