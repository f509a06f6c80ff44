"""The argument gate: every bad input of the foundation issue ends in a specific status."""

from __future__ import annotations

import json
from typing import Annotated, Literal

import pydantic
import pytest

from runtime import CallStatus, ToolCallRequest, ToolRegistry, tool
from runtime.arguments import (
    ArgumentGate,
    ArgumentLimits,
    ArgumentsAccepted,
    Rejection,
    StrictJSONError,
    parse_strict_json,
)


class Item(pydantic.BaseModel):
    name: str
    qty: Annotated[int, pydantic.Field(ge=1)] = 1


@tool
def order(
    count: int,
    mode: Literal["fast", "slow"] = "fast",
    note: str = "",
    item: Item | None = None,
    email: Annotated[str, pydantic.Field(json_schema_extra={"format": "email"})] = "a@b.example",
) -> int:
    """Place an order."""
    return count


GATE = ArgumentGate(ToolRegistry([order]))


def check(arguments: str, name: str = "order") -> ArgumentsAccepted | Rejection:
    return GATE.check(ToolCallRequest(id="c1", name=name, arguments=arguments))


def rejected(arguments: str, name: str = "order") -> Rejection:
    outcome = check(arguments, name)
    assert isinstance(outcome, Rejection), outcome
    return outcome


def test_valid_call_is_accepted_with_parsed_arguments() -> None:
    outcome = check('{"count": 3, "mode": "slow", "item": {"name": "pen", "qty": 2}}')
    assert isinstance(outcome, ArgumentsAccepted)
    assert outcome.arguments == {"count": 3, "mode": "slow", "item": {"name": "pen", "qty": 2}}
    assert outcome.tool is order


def test_unknown_tool_lists_valid_names() -> None:
    outcome = rejected('{"count": 1}', name="delete_everything")
    assert outcome.status is CallStatus.UNKNOWN_TOOL
    assert "delete_everything" in outcome.error.message
    assert "valid tools: order" in outcome.error.message


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("count=3", "arguments must be a JSON object"),
        ('{"count": 3', "not valid JSON"),
        ('{"count": 3, "note": "unterminated', "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('"just a string"', "must be a JSON object"),
        ('{"count": NaN}', "NaN is not valid JSON"),
        ('{"count": Infinity}', "Infinity is not valid JSON"),
        ('{"count": -Infinity}', "-Infinity is not valid JSON"),
        ('{"count": 1e400}', "overflows to infinity"),
        ('{"count": 1, "count": 2}', "duplicate key 'count'"),
        ('{"count": 1' + ", 1" * 0 + "}}", "not valid JSON"),
        ('{"count": ' + "9" * 5000 + "}", "not valid JSON"),
    ],
)
def test_malformed_json_is_invalid_arguments(text: str, needle: str) -> None:
    outcome = rejected(text)
    assert outcome.status is CallStatus.INVALID_ARGUMENTS
    assert needle in outcome.error.message


def test_one_megabyte_string_is_rejected_before_parsing() -> None:
    outcome = rejected('{"count": 1, "note": "' + "x" * (1 << 20) + '"}')
    assert outcome.status is CallStatus.INVALID_ARGUMENTS
    assert "the limit is 65536" in outcome.error.message


def test_size_limit_is_configurable_and_counts_utf8_bytes() -> None:
    with pytest.raises(StrictJSONError, match="limit is 10"):
        parse_strict_json('{"a": "éééé"}', ArgumentLimits(max_bytes=10))
    assert parse_strict_json('{"a": 1}', ArgumentLimits(max_bytes=10)) == {"a": 1}


@pytest.mark.parametrize("depth", [33, 100, 1000, 100_000])
def test_deep_nesting_is_rejected(depth: int) -> None:
    text = '{"count": 1, "item": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
    outcome = GATE.check(ToolCallRequest("c", "order", text))
    assert isinstance(outcome, Rejection)
    assert outcome.status is CallStatus.INVALID_ARGUMENTS
    assert "deeper than 32" in outcome.error.message or "limit is" in outcome.error.message


def test_depth_at_limit_is_parsed() -> None:
    text = '{"a": ' * 31 + "1" + "}" * 31
    assert parse_strict_json(text) is not None


def test_empty_arguments_mean_empty_object() -> None:
    assert parse_strict_json("") == {}
    assert parse_strict_json("  ") == {}


@pytest.mark.parametrize(
    ("text", "path", "expected"),
    [
        ("{}", "$.count", "required property is missing"),
        ('{"count": 1, "colour": "red"}', "$", "'colour' was unexpected"),
        ('{"count": "5"}', "$.count", "expected integer"),
        ('{"count": 5.5}', "$.count", "expected integer"),
        ('{"count": true}', "$.count", "expected integer"),
        ('{"count": 1, "mode": "turbo"}', "$.mode", "is not one of ['fast', 'slow']"),
        ('{"count": 1, "item": {"name": "pen", "qty": 0}}', "$.item", ""),
        ('{"count": 1, "item": {"name": "pen", "extra": 1}}', "$.item", ""),
        ('{"count": 1, "email": "not-an-email"}', "$.email", "email"),
    ],
)
def test_schema_violations_name_the_path(text: str, path: str, expected: str) -> None:
    outcome = rejected(text)
    assert outcome.status is CallStatus.INVALID_ARGUMENTS
    assert outcome.error.type == "schema"
    assert any(detail.startswith(path) for detail in outcome.error.details), outcome.error.details
    assert expected in outcome.error.message
    assert outcome.arguments is not None  # parsed, so the audit log can record them


def test_string_is_never_coerced_to_int() -> None:
    outcome = rejected('{"count": "5"}')
    assert '"5" (string)' in outcome.error.message


@tool
def send(zip_code: Annotated[str, pydantic.Field(pattern=r"^\d{5}$")]) -> str:
    """Send a parcel."""
    return zip_code


@pytest.mark.parametrize("zip_code", ["12345\n", "߀߁߂߃߄", "١٢٣٤٥"])
def test_patterns_are_ecma_262_not_python(zip_code: str) -> None:
    # Python's `$` matches before a final newline and its `\d` any Unicode digit;
    # JSON Schema's (ECMA-262's) do neither.
    gate = ArgumentGate(ToolRegistry([send]))
    arguments = json.dumps({"zip_code": zip_code})
    outcome = gate.check(ToolCallRequest(id="c1", name="send", arguments=arguments))
    assert isinstance(outcome, Rejection)
    assert outcome.status is CallStatus.INVALID_ARGUMENTS
    assert outcome.error.details[0].startswith("$.zip_code: ")
    accepted = gate.check(ToolCallRequest(id="c2", name="send", arguments='{"zip_code": "12345"}'))
    assert isinstance(accepted, ArgumentsAccepted)
