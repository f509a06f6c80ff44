"""The argument gate: strict JSON parsing and JSON Schema validation of one call.

`ArgumentGate.check` turns a `ToolCallRequest` into either an `ArgumentsAccepted`
(the tool and its parsed arguments) or a `Rejection` with a status the caller
can act on and messages that name the JSON path. Nothing is coerced: "5" is
not 5. Schemas are read as the specification reads them (`runtime.schema`):
a `pattern` is ECMA-262, so `^\\d{5}$` refuses `"12345\\n"` and `"١٢٣٤٥"`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema
from jsonschema.protocols import Validator

from runtime.calls import CallStatus, ErrorInfo, ToolCallRequest
from runtime.schema import Check, compile_check, schema_validator
from runtime.tools import Tool, ToolRegistry

__all__ = [
    "ArgumentGate",
    "ArgumentLimits",
    "ArgumentsAccepted",
    "Rejection",
    "StrictJSONError",
    "parse_strict_json",
]

MAX_SCHEMA_ERRORS = 5


@dataclasses.dataclass(frozen=True, slots=True)
class ArgumentLimits:
    """Caps applied before any JSON is parsed or validated."""

    max_bytes: int = 64 * 1024
    max_depth: int = 32


class StrictJSONError(ValueError):
    """The arguments text is not strict JSON; the message says why."""


def _reject_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not valid JSON; send a finite number or null")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise StrictJSONError(f"number {text[:40]} overflows to infinity")
    return value


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise StrictJSONError(f"duplicate key {key!r} in an object")
            seen.add(key)
    return obj


_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant,
    parse_float=_finite_float,
    object_pairs_hook=_unique_object,
)
_scan_once: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def _decode(stripped: str) -> Any:
    """`_DECODER.decode` of text without surrounding whitespace.

    The scanner is called directly (what `decode` does after skipping
    whitespace with two regex matches); text it does not take whole goes
    through `decode`, which raises the usual `JSONDecodeError`.
    """
    try:
        value, end = _scan_once(stripped, 0)
    except StopIteration:
        end = -1
    if end != len(stripped):
        return _DECODER.decode(stripped)
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Iterative depth check: parsed JSON may be too deep for the limit but not for Python."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend(
                (child, depth + 1) for child in node.values() if isinstance(child, dict | list)
            )
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node if isinstance(child, dict | list))
    return False


def parse_strict_json(text: str, limits: ArgumentLimits = ArgumentLimits()) -> dict[str, Any]:
    """Parse a tool call's `arguments` text, refusing anything JSON does not define.

    Rejects NaN/Infinity, numbers that overflow to infinity, duplicate keys,
    text over `limits.max_bytes`, nesting deeper than `limits.max_depth` and a
    top level that is not an object. An empty string means `{}` (servers send
    it for argument-less calls).

    Raises:
        StrictJSONError: With a message fit to show the model.
    """
    if not isinstance(text, str):
        raise StrictJSONError(f"arguments must be a JSON string, got {type(text).__name__}")
    # A character is at most 4 bytes of UTF-8: only a long text needs encoding to be measured.
    if len(text) * 4 > limits.max_bytes and (
        len(text) > limits.max_bytes
        or len(text.encode("utf-8", "surrogatepass")) > limits.max_bytes
    ):
        raise StrictJSONError(
            f"arguments are {len(text.encode('utf-8', 'surrogatepass'))} bytes; the limit is "
            f"{limits.max_bytes}"
        )
    stripped = text.strip()
    if not stripped:
        return {}
    if stripped[0] != "{":
        raise StrictJSONError("arguments must be a JSON object ({...})")
    try:
        value = _decode(stripped)
    except StrictJSONError:
        raise
    except RecursionError:
        raise StrictJSONError(f"arguments nest deeper than {limits.max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise StrictJSONError(
            f"arguments are not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # e.g. an integer literal with more digits than Python allows
        raise StrictJSONError(f"arguments are not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise StrictJSONError(f"arguments must be a JSON object, got {type(value).__name__}")
    # Nesting cannot be deeper than the brackets the text holds: count them
    # (in C) before walking the parsed value.
    if stripped.count("{") + stripped.count("[") > limits.max_depth and _depth_exceeds(
        value, limits.max_depth
    ):
        raise StrictJSONError(f"arguments nest deeper than {limits.max_depth} levels")
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class ArgumentsAccepted:
    """A call whose tool exists and whose arguments satisfy the tool's schema."""

    request: ToolCallRequest
    tool: Tool
    arguments: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Rejection:
    """A call stopped by the gate, with what the model should change.

    `arguments` holds the parsed arguments when parsing succeeded (for the
    audit log), otherwise `None`.
    """

    request: ToolCallRequest
    status: CallStatus
    error: ErrorInfo
    arguments: dict[str, Any] | None = None


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator in ("anyOf", "oneOf") and error.context:
        # Optional[X] fails as "not valid under any of the given schemas": say
        # what was wrong against X instead of also listing the null branch.
        branches = [
            e for e in error.context if e.validator != "type" or e.validator_value != "null"
        ]
        best = jsonschema.exceptions.best_match(branches or error.context)
        if best is not None:
            return _describe(best)
    path = error.json_path
    if error.validator == "required" and isinstance(error.validator_value, list):
        instance = error.instance if isinstance(error.instance, dict) else {}
        missing = [name for name in error.validator_value if name not in instance]
        if missing:
            return f"{path}.{missing[0]}: required property is missing"
    if error.validator == "additionalProperties":
        return f"{path}: {error.message}; allowed properties are listed in the tool schema"
    if error.validator == "type":
        return (
            f"{path}: expected {error.validator_value}, got {json.dumps(error.instance)[:60]} "
            f"({_json_type(error.instance)})"
        )
    if error.validator == "enum":
        return f"{path}: {json.dumps(error.instance)[:60]} is not one of {error.validator_value}"
    return f"{path}: {error.message[:200]}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class ArgumentGate:
    """Looks up the tool, parses the arguments strictly and validates them.

    Each tool's schema is prepared once and cached: jsonschema's validator
    (the authority, and the source of every error message) and, where the
    schema allows, a compiled check (`runtime.schema.compile_check`) that
    accepts a valid call in a few microseconds. A call the compiled check does
    not accept goes to jsonschema, which decides.
    """

    def __init__(self, registry: ToolRegistry, limits: ArgumentLimits = ArgumentLimits()) -> None:
        self.registry = registry
        self.limits = limits
        self._validators: dict[str, tuple[Validator, Check | None]] = {}

    def _prepared(self, tool: Tool) -> tuple[Validator, Check | None]:
        prepared = self._validators.get(tool.name)
        if prepared is None:
            validator = schema_validator(tool.parameters)
            prepared = (validator, compile_check(validator))
            self._validators[tool.name] = prepared
        return prepared

    def _validator(self, tool: Tool) -> Validator:
        return self._prepared(tool)[0]

    def check(self, request: ToolCallRequest) -> ArgumentsAccepted | Rejection:
        """Return the accepted call or the reason it was rejected; never raises."""
        tool = self.registry.get(request.name)
        if tool is None:
            known = ", ".join(self.registry.names) or "(none)"
            refusal = self.registry.refusal(request.name)
            message = (
                f"tool {request.name!r} is refused: {refusal}"
                if refusal is not None
                else f"there is no tool named {request.name!r}; valid tools: {known}"
            )
            return Rejection(
                request, CallStatus.UNKNOWN_TOOL, ErrorInfo(type="unknown_tool", message=message)
            )
        try:
            arguments = parse_strict_json(request.arguments, self.limits)
        except StrictJSONError as exc:
            return Rejection(
                request,
                CallStatus.INVALID_ARGUMENTS,
                ErrorInfo(type="invalid_json", message=str(exc)),
            )
        return self._validate(request, tool, arguments)

    def validate(
        self, request: ToolCallRequest, tool: Tool, arguments: Mapping[str, Any]
    ) -> ArgumentsAccepted | Rejection:
        """Validate already-parsed arguments (also used for edited approvals)."""
        return self._validate(request, tool, dict(arguments))

    def _validate(
        self, request: ToolCallRequest, tool: Tool, arguments: dict[str, Any]
    ) -> ArgumentsAccepted | Rejection:
        validator, quick = self._prepared(tool)
        if quick is not None:
            try:
                if quick(arguments):
                    return ArgumentsAccepted(request, tool, arguments)
            except Exception:  # jsonschema, below, is the authority on odd input
                pass
        errors = sorted(
            validator.iter_errors(arguments),
            key=lambda e: (list(e.absolute_path), str(e.validator)),
        )
        if not errors:
            return ArgumentsAccepted(request, tool, arguments)
        details = tuple(_describe(error) for error in errors[:MAX_SCHEMA_ERRORS])
        more = len(errors) - len(details)
        message = "; ".join(details) + (f"; and {more} more" if more > 0 else "")
        return Rejection(
            request,
            CallStatus.INVALID_ARGUMENTS,
            ErrorInfo(
                type="schema",
                message=f"arguments do not match the schema of {tool.name!r}: {message}",
                details=details,
            ),
            arguments=arguments,
        )
