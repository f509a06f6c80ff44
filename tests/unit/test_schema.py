"""runtime.schema: JSON Schema read as the specification reads it, not as Python would.

The official suite runs in tests/conformance; these pin the behaviour the gate
depends on, each against what jsonschema alone (Python's `re`) would say.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import referencing.exceptions

from runtime.schema import (
    EcmaRegexError,
    check_schema,
    compile_ecma,
    ecma_search,
    schema_validator,
)

ZIP = {"type": "string", "pattern": r"^\d{5}$"}
NOT_A_ZIP = ["12345\n", "߀߁߂߃߄", "١٢٣٤٥"]  # a trailing newline, NKo and Arabic-Indic digits


@pytest.mark.parametrize("value", NOT_A_ZIP)
def test_digits_and_end_of_input_are_ecma_not_python(value: str) -> None:
    assert jsonschema.Draft202012Validator(ZIP).is_valid(value)  # what `re` said
    assert not schema_validator(ZIP).is_valid(value)
    assert schema_validator(ZIP).is_valid("12345")


@pytest.mark.parametrize(
    ("pattern", "text", "found"),
    [
        (r"^\w+$", "é", False),
        (r"^\W$", "é", True),
        (r"^\s$", "\ufeff", True),  # ECMA-262's \s covers U+FEFF, Python's does not
        (r"^\s$", "\x1c", False),  # and Python's covers U+001C, ECMA-262's does not
        (r"^\p{Letter}+$", "héllo", True),
        (r"^\cJ$", "\n", True),
        (r"^.$", "\U0001f600", True),  # one code point, not two UTF-16 units
        (r"^[^]$", "\n", True),
        (r"^a$", "a\n", False),
    ],
)
def test_ecma_search(pattern: str, text: str, found: bool) -> None:
    assert ecma_search(pattern, text) is found


def test_a_lone_surrogate_is_matched_as_the_replacement_character() -> None:
    assert ecma_search("^.$", "\ud800")
    assert not ecma_search("^[a-z]$", "\ud800")
    assert schema_validator({"pattern": "^x.$"}).is_valid("x\udfff")


@pytest.mark.parametrize(
    ("pattern", "hint"),
    [
        ("(?P<year>[0-9]{4})", "(?<name>...)"),
        (r"[0-9]+\Z", "the end of input is $"),
        ("(?i)abc", "no inline flags"),
        (r"a\@b", "only ^$"),
    ],
)
def test_python_only_syntax_is_refused_with_the_ecma_spelling(pattern: str, hint: str) -> None:
    with pytest.raises(EcmaRegexError, match="not an ECMA-262 regular expression") as caught:
        compile_ecma(pattern)
    assert hint in str(caught.value)


def test_check_schema_reads_patterns_as_ecma() -> None:
    check_schema({"type": "string", "pattern": r"^\p{Lu}\cJ$"})  # Python's re refuses both
    with pytest.raises(jsonschema.SchemaError) as caught:
        check_schema({"type": "string", "pattern": "(?P<n>a)"})
    assert isinstance(caught.value.cause, EcmaRegexError)
    with pytest.raises(jsonschema.SchemaError):
        check_schema({"patternProperties": {"(?P<n>a)": {}}})


def test_every_keyword_that_matches_patterns_uses_ecma() -> None:
    keyed = {"patternProperties": {r"^\d+$": {"type": "integer"}}}
    closed = {**keyed, "additionalProperties": False}
    unevaluated = {"allOf": [keyed], "unevaluatedProperties": False}
    for schema in (closed, unevaluated):
        validator = schema_validator(schema)
        assert validator.is_valid({"12": 1})
        assert not validator.is_valid({"١٢": 1}), schema  # not a digit key: an extra key
    assert not schema_validator(keyed).is_valid({"12": "x"})
    assert schema_validator(keyed).is_valid({"١٢": "x"})


def test_a_subschema_declaring_its_draft_keeps_ecma_patterns() -> None:
    # jsonschema re-reads $schema at every $ref target; the root here is one
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "anyOf": [ZIP, {"type": "array", "items": {"$ref": "#"}}],
    }
    validator = schema_validator(schema)
    assert validator.is_valid([["12345"]])
    assert not validator.is_valid([["١٢٣٤٥"]])


def test_older_drafts_get_ecma_patterns_and_strict_formats() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "properties": {"zip": ZIP, "at": {"format": "date-time"}},
    }
    validator = schema_validator(schema)
    assert not validator.is_valid({"zip": "١٢٣٤٥"})
    assert validator.is_valid({"at": "1998-12-31T23:59:60Z"})
    assert not validator.is_valid({"at": "1998-12-31T22:59:60Z"})


def test_a_remote_ref_is_refused_never_fetched() -> None:
    validator = schema_validator({"$ref": "https://example.invalid/schema.json"})
    with pytest.raises(referencing.exceptions.Unresolvable):
        validator.is_valid(1)


@pytest.mark.parametrize(
    ("fmt", "value", "valid"),
    [
        ("date-time", "1998-12-31T23:59:60Z", True),
        ("date-time", "1998-12-31T15:59:60-08:00", True),
        ("date-time", "1998-12-31T23:59:61Z", False),
        ("date-time", "1990-02-29T00:00:00Z", False),
        ("date-time", "2000-02-29t00:00:00z", True),
        ("date", "0000-02-29", True),  # RFC 3339: year 0 is a leap year
        ("time", "01:29:60+01:30", True),
        ("time", "23:59:60+01:00", False),
        ("time", "12:00:00", False),
        ("email", "joe.bloggs@example.com", True),
        ("email", '"joe@bloggs"@example.com', True),
        ("email", "joe.bloggs@[IPv6:::1]", True),
        ("email", "te..st@example.com", False),
        ("email", "joe@invalid=domain.com", False),
        ("email", "joe@[127.0.0.300]", False),
        ("idn-email", "실례@실례.테스트", True),
        ("idn-email", "2962", False),
        ("iri", "http://ƒøø.ßår/?∂éœ=πîx#πîüx", True),
        ("iri", "âππ", False),
        ("iri-reference", "âππ", True),
        ("iri-reference", "#ƒräg\\mênt", False),
        ("regex", r"\p{L}", True),
        ("regex", r"\a", False),
    ],
)
def test_formats_follow_the_rfcs(fmt: str, value: str, valid: bool) -> None:
    assert schema_validator({"format": fmt}).is_valid(value) is valid
