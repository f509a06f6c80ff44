"""JSON Schema as the specification reads it: ECMA-262 patterns, RFC-exact formats, no fetching.

The gate (`runtime.arguments`) and `@tool` (examples, schema checks) validate
through `schema_validator`; the policy's `regex` operator keeps Python's
syntax but ECMA-262's meaning of `\\d`, `\\w`, `\\s` and `$`
(`runtime.policy.normalise`).
"""

from runtime.schema.ecma_regex import EcmaRegexError, compile_ecma, ecma_search
from runtime.schema.validator import check_schema, schema_validator, validator_class

__all__ = [
    "EcmaRegexError",
    "check_schema",
    "compile_ecma",
    "ecma_search",
    "schema_validator",
    "validator_class",
]
