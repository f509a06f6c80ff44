"""The official JSON Schema Test Suite (draft 2020-12) against the gate's validator.

The suite comes from the jsonschema source distribution on PyPI, fetched by
`setup_schema_suite` in scripts/setup.sh (scripts/test.sh runs it); a missing
suite fails here, it never skips. Remote `$ref`s (`http://localhost:1234/...`)
are served from the suite's remotes/ through a `referencing.Registry`, the
hook the gate leaves for schemas a tool brings along; nothing is fetched. Every
case passes or is listed, with its reason, in skipped.yaml; the figures per
group are the README's.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import referencing
import referencing.jsonschema
import yaml

from runtime import ToolRegistry, tool
from runtime.arguments import ArgumentGate
from runtime.schema import compile_check, schema_validator, validator_class

HERE = Path(__file__).parent
README = HERE.parent.parent / "README.md"
DEFAULT_SUITE = Path.home() / ".cache" / "agentrt" / "json-schema-test-suite"

# The groups the issue names; each is a set of files under tests/draft2020-12/.
GROUPS = {
    "required": "*.json",
    "optional/ecmascript-regex": "optional/ecmascript-regex.json",
    "optional/bignum": "optional/bignum.json",
    "optional/non-bmp-regex": "optional/non-bmp-regex.json",
    "optional/float-overflow": "optional/float-overflow.json",
    "optional/format": "optional/format/*.json",
}


@dataclass(frozen=True)
class Outcome:
    file: str
    case: str
    test: str
    passed: bool
    got: str


@dataclass(frozen=True)
class Skip:
    file: str
    case: str
    test: str
    reason: str

    def covers(self, outcome: Outcome) -> bool:
        return (
            outcome.file == self.file
            and fnmatch.fnmatchcase(outcome.case, self.case)
            and fnmatch.fnmatchcase(outcome.test, self.test)
        )


def suite_root() -> Path:
    root = Path(os.environ.get("AGENTRT_SCHEMA_SUITE") or DEFAULT_SUITE)
    if not (root / "tests" / "draft2020-12").is_dir():
        pytest.fail(
            f"the JSON Schema Test Suite is not at {root}: run `source scripts/setup.sh && "
            "setup_schema_suite` (scripts/test.sh does), or point AGENTRT_SCHEMA_SUITE at the "
            "json/ folder of the jsonschema source distribution",
            pytrace=False,
        )
    return root


@cache
def remotes(root: Path) -> referencing.Registry[Any]:
    """The suite's remotes/, at the address its tests use."""
    registry: referencing.Registry[Any] = referencing.Registry()
    for path in sorted((root / "remotes").rglob("*.json")):
        uri = "http://localhost:1234/" + path.relative_to(root / "remotes").as_posix()
        resource = referencing.Resource.from_contents(
            json.loads(path.read_text(encoding="utf-8")),
            default_specification=referencing.jsonschema.DRAFT202012,
        )
        registry = registry.with_resource(uri, resource)
    return registry.crawl()


@cache
def run_group(root: Path, group: str) -> tuple[Outcome, ...]:
    base = root / "tests" / "draft2020-12"
    outcomes = []
    for path in sorted(base.glob(GROUPS[group])):
        file = path.relative_to(base).as_posix()
        for case in json.loads(path.read_text(encoding="utf-8")):
            try:
                validator = schema_validator(case["schema"], registry=remotes(root))
                built = None
            except Exception as exc:  # a schema the gate cannot read fails all its tests
                built = f"{type(exc).__name__}: {exc}"
            for test in case["tests"]:
                got = built
                if got is None:
                    try:
                        got = "valid" if validator.is_valid(test["data"]) else "invalid"
                    except Exception as exc:
                        got = f"{type(exc).__name__}: {exc}"
                expected = "valid" if test["valid"] else "invalid"
                outcomes.append(
                    Outcome(file, case["description"], test["description"], got == expected, got)
                )
    return tuple(outcomes)


def skips() -> list[Skip]:
    entries = yaml.safe_load((HERE / "skipped.yaml").read_text(encoding="utf-8"))
    return [
        Skip(e["file"], e.get("case", "*"), e.get("test", "*"), " ".join(e["reason"].split()))
        for e in entries
    ]


@pytest.mark.parametrize("group", list(GROUPS))
def test_suite_group_passes_or_is_listed(group: str) -> None:
    outcomes = run_group(suite_root(), group)
    assert outcomes, f"no cases in group {group}: is the suite complete?"
    listed = skips()
    failing = [o for o in outcomes if not o.passed]
    unlisted = [o for o in failing if not any(s.covers(o) for s in listed)]
    assert not unlisted, "failing and not in skipped.yaml:\n" + "\n".join(
        f"  {o.file} / {o.case} / {o.test}: got {o.got[:200]}" for o in unlisted
    )
    passing_but_listed = [o for o in outcomes if o.passed and any(s.covers(o) for s in listed)]
    assert not passing_but_listed, "listed in skipped.yaml but passing:\n" + "\n".join(
        f"  {o.file} / {o.case} / {o.test}" for o in passing_but_listed
    )


def test_every_skip_entry_names_a_failing_case_and_a_reason() -> None:
    root = suite_root()
    failing = [o for group in GROUPS for o in run_group(root, group) if not o.passed]
    for skip in skips():
        assert skip.reason, skip
        assert any(skip.covers(o) for o in failing), f"{skip} matches no failing case"


def test_readme_gives_the_figures_of_each_group() -> None:
    root = suite_root()
    text = README.read_text(encoding="utf-8")
    for group in GROUPS:
        outcomes = run_group(root, group)
        passed = sum(o.passed for o in outcomes)
        row = rf"\|\s*`{re.escape(group)}`\s*\|\s*{len(outcomes)}\s*\|\s*{passed}\s*\|"
        row += rf"\s*{len(outcomes) - passed}\s*\|"
        assert re.search(row, text), (
            f"README lacks the row for {group}: {len(outcomes)} cases, {passed} passed, "
            f"{len(outcomes) - passed} skipped"
        )


def test_the_gate_validates_with_the_validator_under_test() -> None:
    @tool
    def noop(text: str) -> str:
        """Do nothing."""
        return text

    gate = ArgumentGate(ToolRegistry([noop]))
    assert type(gate._validator(noop)) is validator_class(noop.parameters)


def test_the_compiled_check_agrees_with_jsonschema_on_every_suite_instance() -> None:
    """The gate's fast path (`compile_check`) says "valid" exactly when jsonschema does.

    Over every draft 2020-12 file of the suite (optional ones included); cases
    whose schema only jsonschema reads (anchors, `$id`, unevaluated*, remote
    refs) are skipped by design, and most cases must compile.
    """
    root = suite_root()
    base = root / "tests" / "draft2020-12"
    compiled = total = 0
    disagreements = []
    for path in sorted(base.rglob("*.json")):
        for case in json.loads(path.read_text(encoding="utf-8")):
            try:
                validator = schema_validator(case["schema"], registry=remotes(root))
            except Exception:  # a schema the gate refuses has no fast path either
                continue
            total += 1
            check = compile_check(validator)
            if check is None:
                continue
            compiled += 1
            for test in case["tests"]:
                expected = _verdict(validator.is_valid, test["data"])
                got = _verdict(check, test["data"])
                if got != expected:
                    where = (
                        f"{path.relative_to(base)} / {case['description']} / {test['description']}"
                    )
                    disagreements.append(f"{where}: jsonschema {expected}, compiled {got}")
    assert not disagreements, "\n".join(disagreements)
    assert compiled >= 0.6 * total, f"only {compiled} of {total} suite schemas compile"


def _verdict(check: Any, instance: Any) -> str:
    try:
        return "valid" if check(instance) else "invalid"
    except Exception as exc:
        return f"{type(exc).__name__}"
