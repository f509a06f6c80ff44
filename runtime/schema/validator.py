"""Validators that read a schema as the JSON Schema specification does.

jsonschema's draft classes, extended: regular expressions are ECMA-262
(`runtime.schema.keywords`), formats are asserted to the RFCs
(`runtime.schema.formats`), and a `$ref` to anything the schema does not
itself contain is refused, never fetched (jsonschema still downloads remote
references by default). A schema's `$schema` picks the draft; none means
2020-12.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import jsonschema
import referencing
from jsonschema.protocols import Validator

from runtime.schema.formats import strict_format_checker
from runtime.schema.keywords import ECMA_KEYWORDS, ECMA_KEYWORDS_2020_12

__all__ = ["check_schema", "schema_validator", "validator_class"]

Schema = Mapping[str, Any] | bool

# Only what the schema holds (and the drafts' meta-schemas, which jsonschema adds).
_NO_RETRIEVAL: referencing.Registry[Any] = referencing.Registry()


def _evolve(self: Any, **changes: Any) -> Any:
    """jsonschema's `evolve`, but a subschema's `$schema` picks this module's class.

    jsonschema re-reads `$schema` at every subschema and `$ref` target; left
    alone it would pick its own class there and match patterns with `re`.
    """
    cls = type(self)
    schema = changes.setdefault("schema", self.schema)
    evolved = _DIALECTS.get(jsonschema.validators.validator_for(schema, default=cls), cls)
    for name, alias in _INIT_FIELDS[cls]:
        if alias not in changes:
            changes[alias] = getattr(self, name)
    return evolved(**changes)


def _dialect(base: Any) -> Any:
    keywords = ECMA_KEYWORDS_2020_12 if base is jsonschema.Draft202012Validator else ECMA_KEYWORDS
    cls = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        base,
        {name: rule for name, rule in keywords.items() if name in base.VALIDATORS},
        format_checker=strict_format_checker(base.FORMAT_CHECKER),
    )
    cls.evolve = _evolve
    return cls


_DRAFTS = (
    jsonschema.Draft3Validator,
    jsonschema.Draft4Validator,
    jsonschema.Draft6Validator,
    jsonschema.Draft7Validator,
    jsonschema.Draft201909Validator,
    jsonschema.Draft202012Validator,
)
_DIALECTS: dict[Any, Any] = {draft: _dialect(draft) for draft in _DRAFTS}
_DIALECTS.update({cls: cls for cls in list(_DIALECTS.values())})
# (attribute, constructor argument) of each class's fields, as `evolve` copies them
_INIT_FIELDS = {
    cls: [(field.name, field.alias) for field in attrs.fields(cls) if field.init]
    for cls in _DIALECTS.values()
}


def validator_class(schema: Schema) -> type[Validator]:
    """The class that validates against `schema`: its `$schema`'s draft, 2020-12 by default."""
    base = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    found: type[Validator] = _DIALECTS.get(base, _DIALECTS[jsonschema.Draft202012Validator])
    return found


def check_schema(schema: Schema) -> None:
    """Check `schema` against its meta-schema, its patterns as ECMA-262.

    Raises:
        jsonschema.SchemaError: The most relevant problem, naming its place.
    """
    cls = validator_class(schema)
    meta = validator_class(cls.META_SCHEMA)
    checker = meta(cls.META_SCHEMA, format_checker=meta.FORMAT_CHECKER)
    error = jsonschema.exceptions.best_match(checker.iter_errors(schema))
    if error is not None:
        raise jsonschema.SchemaError.create_from(error)


def schema_validator(
    schema: Schema, *, registry: referencing.Registry[Any] | None = None
) -> Validator:
    """A checked validator for `schema` that asserts formats.

    Args:
        schema: The JSON Schema.
        registry: Schemas a `$ref` may name besides `schema`'s own parts
            (the conformance test serves the suite's remotes this way); nothing
            else is ever retrieved.

    Raises:
        jsonschema.SchemaError: `schema` is not a valid schema.
    """
    check_schema(schema)
    cls = validator_class(schema)
    return cls(
        schema,
        format_checker=cls.FORMAT_CHECKER,
        registry=_NO_RETRIEVAL if registry is None else registry,
    )
