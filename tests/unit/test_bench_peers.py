"""`runtime.bench.peers`: our gate's column of the peers table, and how a verdict is read.

The peers themselves (openai-agents, pydantic-ai) run only in `bench/peers/run.sh`'s own
virtualenv; the README's table says our gate rejects every probe but the valid call, and
these tests hold it to that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from runtime.arguments import ArgumentGate
from runtime.bench.peers import PROBES, gate_checker, read_verdict
from runtime.stack import build_registry


@pytest.fixture(scope="module")
def gate() -> ArgumentGate:
    return ArgumentGate(build_registry("tools"))


def test_probe_names_are_unique() -> None:
    assert len({probe.name for probe in PROBES}) == len(PROBES)


@pytest.mark.parametrize("probe", PROBES, ids=lambda probe: probe.name)
def test_our_gate_accepts_only_the_valid_call(gate: ArgumentGate, probe: Any) -> None:
    verdict = read_verdict(gate_checker(gate), probe.arguments)

    assert verdict.accepted is (probe.name == "valid"), verdict.detail


def test_a_rejection_says_which_stage_refused(gate: ArgumentGate) -> None:
    probes = {probe.name: probe.arguments for probe in PROBES}
    check = gate_checker(gate)

    assert "invalid_json" in read_verdict(check, probes["duplicate_key"]).detail
    assert "schema" in read_verdict(check, probes["string_for_number"]).detail


def test_plain_json_loads_lets_most_probes_through() -> None:
    # The baseline column: json.loads takes NaN, duplicates and the rest; only the trailing
    # text stops it. If this changes, the README's table is stale.
    rejected = {
        probe.name for probe in PROBES if not read_verdict(json.loads, probe.arguments).accepted
    }

    assert rejected == {"trailing_garbage"}


def test_an_accepted_call_shows_what_the_tool_would_receive() -> None:
    def accept_with_extra(text: str) -> Mapping[str, Any]:
        return {"value": 2.0, "from_unit": "km", "to_unit": "mi", "precision": 2}

    verdict = read_verdict(accept_with_extra, "{}")

    assert verdict.accepted
    assert verdict.detail == "value=2.0 (float), extra ['precision']"


def test_an_exception_is_a_rejection_with_its_first_line() -> None:
    def refuse(text: str) -> Mapping[str, Any]:
        raise ValueError("1 validation error for convert_units\nvalue\n  Input should be...")

    verdict = read_verdict(refuse, "{}")

    assert not verdict.accepted
    assert verdict.detail == "ValueError: 1 validation error for convert_units"
