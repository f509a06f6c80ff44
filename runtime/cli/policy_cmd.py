"""`agentrt policy test DIR` and `agentrt policy explain`: check and explain policies.

Case files (`DIR/tests/*.yaml`, read by the same strict YAML loader as
policies) look like::

    policies: [../examples/payments.yaml]   # optional; relative to the case file;
                                            # default: DIR's top-level *.yaml
    cases:
      - name: small refund is allowed
        tool: issue_refund
        args: {amount: 20, currency: EUR, order_id: "A-1"}
        context: {tenant: acme, agent: support-bot}   # tenant, agent, conversation_id,
                                                     # run_id, principal; others go to extra
        repeat: 1          # optional: call N times; the expectation is for the last
        approved: false    # optional: decide as after a human's approval
        expect: {decision: allow, rule_ids: [allow-refunds]}   # rule_ids optional
                           # reason_contains: optional substring of the reason

The cases of one file run in order against one fresh policy set with an
in-memory rate-limit store and a frozen clock, so `repeat` can fill a window.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from runtime.calls import CallContext

_FIXED_NOW = 1_700_000_000.0
_CONTEXT_FIELDS = ("tenant", "agent", "conversation_id", "run_id", "principal")


def register(subparsers: Any) -> None:
    """Add `policy test` and `policy explain`."""
    parser = subparsers.add_parser("policy", help="test and explain allowlist policies")
    actions = parser.add_subparsers(dest="policy_command", metavar="ACTION", required=True)

    test = actions.add_parser("test", help="run the case files in DIR/tests/*.yaml")
    test.add_argument(
        "dir", metavar="DIR", help="policy directory, e.g. runtime/policies/ (the shipped one)"
    )
    test.add_argument("-q", "--quiet", action="store_true", help="print failures only")
    test.set_defaults(handler=run_tests)

    explain = actions.add_parser("explain", help="print the decision for one call, with reasons")
    explain.add_argument(
        "--policy",
        default=None,
        metavar="DIR",
        help="directory or file (default: the shipped default policy)",
    )
    explain.add_argument("--tool", required=True)
    explain.add_argument("--args", default="{}", metavar="JSON", help="arguments, a JSON object")
    explain.add_argument("--tenant")
    explain.add_argument("--agent")
    explain.add_argument("--conversation-id")
    explain.add_argument(
        "--context", action="append", default=[], metavar="K=V", help="extra context (repeatable)"
    )
    explain.add_argument(
        "--approved", action="store_true", help="decide as after a human approved the call"
    )
    explain.set_defaults(handler=run_explain)


def parse_json_object(text: str) -> dict[str, Any]:
    """Parse a JSON object strictly: no NaN/Infinity, no duplicate keys.

    Raises:
        ValueError: Saying what is wrong.
    """

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f"duplicate key {key!r}")
            out[key] = value
        return out

    try:
        value = json.loads(text, parse_constant=no_constants, object_pairs_hook=no_duplicates)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"arguments are not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("arguments must be a JSON object")
    return value


def context_from_mapping(values: dict[str, Any]) -> CallContext:
    """Build a `CallContext`: known names become fields, the rest `extra`."""
    from runtime.calls import CallContext

    fields = {k: values[k] for k in _CONTEXT_FIELDS if values.get(k) is not None}
    extra = {k: v for k, v in values.items() if k not in _CONTEXT_FIELDS}
    return CallContext(**fields, extra=extra)


def run_explain(args: argparse.Namespace) -> int:
    """Handler of `agentrt policy explain`."""
    from runtime.policy.loader import PolicyLoadError, default_policy_dir, load_policies
    from runtime.policy.ratelimit import InMemoryRateLimitStore

    try:
        arguments = parse_json_object(args.args)
        extra: dict[str, Any] = {}
        for item in args.context:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ValueError(f"--context wants K=V, got {item!r}")
            extra[key] = value
        extra.update(
            {
                k: v
                for k, v in (
                    ("tenant", args.tenant),
                    ("agent", args.agent),
                    ("conversation_id", args.conversation_id),
                )
                if v is not None
            }
        )
        # Explaining never consumes budget, and an in-memory store keeps it
        # from creating .agentrt/ratelimits.db as a side effect.
        source = args.policy if args.policy is not None else default_policy_dir()
        policy = load_policies(source, rate_limits=InMemoryRateLimitStore())
    except (ValueError, PolicyLoadError) as exc:
        print(f"agentrt policy explain: {exc}", file=sys.stderr)
        return 2
    context = context_from_mapping(extra)
    report = policy.explain(args.tool, arguments, context, approved=args.approved)
    report = {"tool": args.tool, **report, "policy_files": [str(p) for p in policy.sources]}
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


def _case_models() -> Any:
    """The case-file schema (built lazily: pydantic is not imported for --help)."""
    from pydantic import BaseModel, ConfigDict, Field

    class Expect(BaseModel):
        model_config = ConfigDict(extra="forbid")
        decision: Literal["allow", "deny", "require_approval"]
        rule_ids: list[str] | None = None
        reason_contains: str | None = None

    class Case(BaseModel):
        model_config = ConfigDict(extra="forbid")
        name: str
        tool: str
        args: dict[str, Any] = {}
        context: dict[str, Any] = {}
        repeat: int = Field(default=1, ge=1, le=10_000)
        approved: bool = False
        expect: Expect

    class CaseFile(BaseModel):
        model_config = ConfigDict(extra="forbid")
        policies: list[str] | None = None
        cases: list[Case] = Field(min_length=1)

    return CaseFile


def run_tests(args: argparse.Namespace) -> int:
    """Handler of `agentrt policy test DIR`: exit 1 on any mismatch or broken file."""
    root = Path(args.dir)
    case_files = sorted([*root.glob("tests/*.yaml"), *root.glob("tests/*.yml")])
    if not case_files:
        print(f"agentrt policy test: no case files in {root / 'tests'}", file=sys.stderr)
        return 1
    passed = failed = 0
    for case_file in case_files:
        ok, bad = _run_case_file(root, case_file, quiet=args.quiet)
        passed += ok
        failed += bad
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def _run_case_file(root: Path, case_file: Path, *, quiet: bool) -> tuple[int, int]:
    import pydantic

    from runtime.policy.loader import (
        PolicyLoadError,
        load_policies,
        read_strict_yaml,
        validation_problems,
    )
    from runtime.policy.ratelimit import InMemoryRateLimitStore

    try:
        data, lines = read_strict_yaml(case_file)
        try:
            spec = _case_models().model_validate(data)
        except pydantic.ValidationError as exc:
            raise PolicyLoadError(validation_problems(str(case_file), data, lines, exc)) from None
        sources = (
            [case_file.parent / p for p in spec.policies] if spec.policies is not None else [root]
        )
        policy = load_policies(
            *sources, rate_limits=InMemoryRateLimitStore(), clock=lambda: _FIXED_NOW
        )
    except PolicyLoadError as exc:
        print(f"FAIL {case_file}: {exc}")
        return 0, 1
    passed = failed = 0
    for case in spec.cases:
        context = context_from_mapping(case.context)
        decide = policy.decide_approved if case.approved else policy.decide
        for _ in range(case.repeat):
            decision = decide(case.tool, case.args, context)
        expect = case.expect
        problems = []
        if decision.decision != expect.decision:
            problems.append(f"decision {decision.decision!r}, expected {expect.decision!r}")
        if expect.rule_ids is not None and sorted(decision.rule_ids) != sorted(expect.rule_ids):
            problems.append(f"rule_ids {list(decision.rule_ids)}, expected {expect.rule_ids}")
        if expect.reason_contains is not None and expect.reason_contains not in decision.reason:
            problems.append(f"reason {decision.reason!r} lacks {expect.reason_contains!r}")
        label = f"{case_file.name}::{case.name}"
        if problems:
            failed += 1
            print(f"FAIL {label}: {'; '.join(problems)} (reason: {decision.reason})")
        else:
            passed += 1
            if not quiet:
                print(f"PASS {label}")
    return passed, failed
