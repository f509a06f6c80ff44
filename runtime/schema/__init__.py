"""JSON Schema as the specification reads it: ECMA-262 patterns, RFC-exact formats, no fetching.

The gate (`runtime.arguments`) and `@tool` (examples, schema checks) validate
through `schema_validator`; the gate's fast path to "valid" is `compile_check`
(jsonschema still decides every rejection); the policy's `regex` operator keeps Python's
syntax but ECMA-262's meaning of `\\d`, `\\w`, `\\s` and `$`
(`runtime.policy.normalise`).
"""

from runtime.schema.compiled import Check, compile_check
from runtime.schema.ecma_regex import EcmaRegexError, compile_ecma, ecma_search, ecma_searcher
from runtime.schema.validator import check_schema, schema_validator, validator_class

__all__ = [
    "Check",
    "EcmaRegexError",
    "check_schema",
    "compile_check",
    "compile_ecma",
    "ecma_search",
    "ecma_searcher",
    "schema_validator",
    "validator_class",
]
