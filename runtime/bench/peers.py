"""The inputs every argument checker gets in `bench/peers`, and how its answer is read.

`bench/peers/measure.py` puts the same arguments through our gate and through
the peers' paths (openai-agents, pydantic-ai) in a virtualenv of its own: the
peers are not dependencies of this project. What is shared, and needs none of
them, lives here: the probes and the reading of one verdict.

A checker is a callable that takes the arguments text a model sent and
returns the arguments the tool would receive, or raises to reject them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

from runtime.arguments import ArgumentGate, Rejection
from runtime.bench.gate import TYPICAL_CALL
from runtime.calls import ToolCallRequest

#: Takes the arguments text; returns what the tool would receive, or raises.
Checker = Callable[[str], Mapping[str, Any]]

_UNITS = '"from_unit": "km", "to_unit": "mi"'


@dataclasses.dataclass(frozen=True, slots=True)
class Probe:
    """One arguments text for `convert_units`, and what accepting it lets through."""

    name: str
    arguments: str
    risk: str


PROBES: tuple[Probe, ...] = (
    Probe(
        "valid", TYPICAL_CALL.arguments, "nothing: the benchmark call, every checker should pass it"
    ),
    Probe(
        "nan",
        f'{{"value": NaN, {_UNITS}}}',
        "a value JSON does not define reaches the tool; NaN compares false with everything",
    ),
    Probe(
        "infinity",
        f'{{"value": Infinity, {_UNITS}}}',
        "a value JSON does not define reaches the tool",
    ),
    Probe(
        "overflow_1e999",
        f'{{"value": 1e999, {_UNITS}}}',
        "valid JSON that becomes inf in a double: bounds checks on the number pass or fail oddly",
    ),
    Probe(
        "duplicate_key",
        f'{{"value": 1, "value": 2, {_UNITS}}}',
        "two readers of the same text (a policy, a log viewer, the tool) can see different values",
    ),
    Probe(
        "string_for_number",
        f'{{"value": "7", {_UNITS}}}',
        "a string is coerced to a number: the schema the model was shown is not the one enforced",
    ),
    Probe(
        "bool_for_number",
        f'{{"value": true, {_UNITS}}}',
        "a boolean is read as 1",
    ),
    Probe(
        "extra_key",
        f'{{"value": 12.5, {_UNITS}, "precision": 2}}',
        "an argument the tool does not take is dropped silently: the model believes it was honoured",
    ),
    Probe(
        "unknown_unit",
        '{"value": 12.5, "from_unit": "km", "to_unit": "miles"}',
        "a value outside the enum reaches the tool",
    ),
    Probe(
        "trailing_garbage",
        f'{{"value": 12.5, {_UNITS}}} {{"value": 1}}',
        "half of what the model sent is ignored",
    ),
    Probe(
        "not_an_object",
        '[12.5, "km", "mi"]',
        "positional arguments are guessed",
    ),
)


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """What one checker did with one probe.

    Attributes:
        accepted: The tool would run.
        detail: What the tool would receive (`value=...`), or the error's type
            and first line.
    """

    accepted: bool
    detail: str


def read_verdict(check: Checker, arguments: str) -> Verdict:
    """Run `check` on `arguments`; any exception is a rejection."""
    try:
        received = check(arguments)
    except Exception as exc:  # each library rejects with its own exception type
        first_line = (str(exc).strip().splitlines() or [""])[0]
        return Verdict(False, f"{type(exc).__name__}: {first_line[:120]}")
    return Verdict(True, describe_arguments(received))


def describe_arguments(received: object) -> str:
    """`value=...` and any argument beyond the three the tool takes, briefly."""
    if not isinstance(received, Mapping):
        return f"{type(received).__name__} {received!r:.60}"
    value = received.get("value")
    shown = repr(value) if not (isinstance(value, float) and math.isnan(value)) else "nan"
    extra = sorted(set(received) - {"value", "from_unit", "to_unit"})
    return f"value={shown} ({type(value).__name__})" + (f", extra {extra}" if extra else "")


class ArgumentsRejected(ValueError):
    """Our gate's `Rejection` as an exception, so it reads like the peers' errors."""


def gate_checker(gate: ArgumentGate, tool_name: str = TYPICAL_CALL.name) -> Checker:
    """Our `ArgumentGate.check` (strict parse + schema validation) as a `Checker`."""

    def check(arguments: str) -> Mapping[str, Any]:
        result = gate.check(ToolCallRequest(id="probe", name=tool_name, arguments=arguments))
        if isinstance(result, Rejection):
            raise ArgumentsRejected(f"{result.error.type}: {result.error.message}")
        return result.arguments

    return check
