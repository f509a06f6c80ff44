"""Combining rules, fail-closed evaluation and explained decisions of `PolicySet`."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.calls import CallContext
from runtime.policy.decision import PolicyEngine
from runtime.policy.engine import PolicySet
from runtime.policy.model import PolicyFile
from runtime.policy.ratelimit import InMemoryRateLimitStore

CTX = CallContext(tenant="acme", agent="support-1")


def policy_file(
    rules: list[dict[str, Any]],
    *,
    pid: str = "p",
    scope: dict[str, Any] | None = None,
    limits: list[dict[str, Any]] | None = None,
) -> PolicyFile:
    data: dict[str, Any] = {
        "apiVersion": "agentrt/v1",
        "kind": "ToolPolicy",
        "metadata": {"id": pid},
        "rules": rules,
        "limits": limits or [],
    }
    if scope is not None:
        data["scope"] = scope
    return PolicyFile.model_validate(data)


def policy_set(*files: PolicyFile, clock: Any = None) -> PolicySet:
    return PolicySet(files, rate_limits=InMemoryRateLimitStore(), clock=clock or (lambda: 1000.0))


def rule(
    rid: str, effect: str, when: dict[str, Any] | None = None, tools: Any = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rid, "effect": effect, "tools": tools or ["t"]}
    if when is not None:
        out["when"] = when
    return out


def test_policy_set_satisfies_the_protocol() -> None:
    engine: PolicyEngine = policy_set(policy_file([]))
    assert engine.decide("t", {}, CTX).decision == "deny"


def test_default_deny_without_rules() -> None:
    decision = policy_set(policy_file([])).decide("t", {"a": 1}, CTX)
    assert decision.decision == "deny"
    assert decision.rule_ids == ("default-deny",)
    assert "default deny" in decision.reason
    assert len(decision.policy_sha256) == 64


def test_deny_overrides_allow_and_approval_regardless_of_order() -> None:
    rules = [rule("a", "allow"), rule("q", "require_approval"), rule("d", "deny")]
    for order in (rules, rules[::-1]):
        assert policy_set(policy_file(order)).decide("t", {}, CTX).rule_ids == ("d",)


def test_approval_beats_allow() -> None:
    ps = policy_set(policy_file([rule("a", "allow"), rule("q", "require_approval")]))
    decision = ps.decide("t", {}, CTX)
    assert decision.decision == "require_approval"
    assert decision.approval_timeout_s == 900.0
    assert ps.decide_approved("t", {}, CTX).decision == "allow"


def test_approval_timeout_is_the_shortest_matching() -> None:
    rules = [
        {**rule("q1", "require_approval"), "approval": {"timeout": "15m"}},
        {**rule("q2", "require_approval"), "approval": {"timeout": "30s"}},
    ]
    assert policy_set(policy_file(rules)).decide("t", {}, CTX).approval_timeout_s == 30.0


def test_kill_switch_denies_only_when_the_context_says_so() -> None:
    # The example of issue 13: absent context must not trip a kill switch.
    kill = rule("kill-switch", "deny", {"context.frozen": {"equals": "yes"}}, tools=["*"])
    ps = policy_set(policy_file([kill, rule("a", "allow", tools=["*"])]))
    assert ps.decide("t", {}, CTX).decision == "allow"
    thawed = CallContext(tenant="acme", extra={"frozen": "no"})
    assert ps.decide("t", {}, thawed).decision == "allow"
    frozen = CallContext(tenant="acme", extra={"frozen": "yes"})
    assert ps.decide("t", {}, frozen).rule_ids == ("kill-switch",)


def test_a_missing_field_is_false_in_allow_and_deny_rules() -> None:
    deny = rule("d", "deny", {"args.path": {"regex": ".*secret.*"}})
    allow = rule("a", "allow", {"args.size": {"lte": 10}})
    ps = policy_set(policy_file([deny, allow]))
    # path missing: the deny rule does not apply
    assert ps.decide("t", {"size": 1}, CTX).rule_ids == ("a",)
    # size missing: the allow rule does not apply either
    denied = ps.decide("t", {"path": "x"}, CTX)
    assert denied.rule_ids == ("default-deny",)
    assert "args.size: missing, so it does not hold" in denied.reason
    assert ps.decide("t", {"path": "secret.txt", "size": 3}, CTX).rule_ids == ("d",)


def test_a_missing_field_does_not_trip_an_approval_rule() -> None:
    ps = policy_set(
        policy_file([rule("a", "allow"), rule("q", "require_approval", {"args.n": {"gt": 5}})])
    )
    assert ps.decide("t", {}, CTX).decision == "allow"


def test_exists_requires_presence() -> None:
    deny = rule("d", "deny", {"context.ticket": {"exists": False}})
    ps = policy_set(policy_file([deny, rule("a", "allow")]))
    assert ps.decide("t", {}, CTX).rule_ids == ("d",)
    assert ps.decide("t", {}, CallContext(extra={"ticket": "T-1"})).decision == "allow"


@pytest.mark.parametrize(
    ("when", "value"),
    [
        ({"args.v": {"regex": "[a-z]+"}}, 12),  # regex on a number
        ({"args.v": {"gt": 5}}, "lots"),  # wrong type
        ({"args.v": {"url": {"hosts": ["docs.python.org"]}}}, "https://u@docs.python.org/"),
        ({"args.v": {"ip_in": ["10.0.0.0/8"]}}, "10.0.0.999"),  # unparsable IP
        ({"args.v": {"gt": 5}}, float("nan")),
    ],
)
def test_an_evaluation_error_matches_a_deny_rule_and_fails_an_allow_rule(
    when: dict[str, Any], value: Any
) -> None:
    as_deny = policy_set(policy_file([rule("d", "deny", when), rule("a", "allow")]))
    denied = as_deny.decide("t", {"v": value}, CTX)
    assert denied.rule_ids == ("d",)
    assert "could not be evaluated" in denied.reason
    as_allow = policy_set(policy_file([rule("a", "allow", when)]))
    assert as_allow.decide("t", {"v": value}, CTX).rule_ids == ("default-deny",)
    # and absent, neither rule applies
    assert as_deny.decide("t", {}, CTX).rule_ids == ("a",)
    assert as_allow.decide("t", {}, CTX).rule_ids == ("default-deny",)


def test_evaluation_error_counts_as_a_match_for_approval_rules() -> None:
    ps = policy_set(
        policy_file([rule("a", "allow"), rule("q", "require_approval", {"args.n": {"gt": 5}})])
    )
    assert ps.decide("t", {"n": "lots"}, CTX).decision == "require_approval"
    assert ps.decide("t", {"n": 1}, CTX).decision == "allow"


def test_exists_guard_keeps_unrelated_tools_allowed() -> None:
    deny = rule("d", "deny", {"args.path": {"exists": True, "regex": ".*\\.env"}}, tools=["*"])
    ps = policy_set(policy_file([deny, rule("a", "allow", tools=["*"])]))
    assert ps.decide("calculate", {"expression": "1"}, CTX).decision == "allow"
    assert ps.decide("read_file", {"path": "a/.env"}, CTX).rule_ids == ("d",)


def test_failed_conditions_of_the_nearest_allow_rule() -> None:
    near = rule("near", "allow", {"all": [{"args.a": {"equals": 1}}, {"args.b": {"equals": 2}}]})
    far = rule(
        "far",
        "allow",
        {"all": [{"args.a": {"equals": 9}}, {"args.b": {"equals": 9}}, {"args.c": {"equals": 9}}]},
    )
    decision = policy_set(policy_file([far, near])).decide("t", {"a": 1, "b": 3}, CTX)
    assert decision.rule_ids == ("default-deny",)
    assert decision.failed_conditions == ("args.b: equals 2 did not hold",)
    assert "'near'" in decision.reason


def test_scope_globs_select_files() -> None:
    scoped = policy_file([rule("a", "allow")], scope={"tenants": ["acme"], "agents": ["support-*"]})
    ps = policy_set(scoped)
    assert ps.decide("t", {}, CTX).decision == "allow"
    assert ps.decide("t", {}, CallContext(tenant="acme", agent="billing")).decision == "deny"
    assert ps.decide("t", {}, CallContext(tenant="bob", agent="support-1")).decision == "deny"
    assert ps.decide("t", {}, CallContext()).decision == "deny"


def test_tool_globs() -> None:
    ps = policy_set(policy_file([rule("a", "allow", tools=["read_*"])]))
    assert ps.decide("read_file", {}, CTX).decision == "allow"
    assert ps.decide("write_file", {}, CTX).decision == "deny"


def test_rule_reason_is_shown() -> None:
    deny = {**rule("d", "deny"), "reason": "Never on Sundays."}
    assert policy_set(policy_file([deny])).decide("t", {}, CTX).reason == "Never on Sundays."


def test_rate_limit_denies_and_names_the_limit() -> None:
    now = [1000.0]
    limits = [{"id": "lim", "tools": ["t"], "per": ["tenant"], "rate": "2/minute"}]
    ps = policy_set(policy_file([rule("a", "allow")], limits=limits), clock=lambda: now[0])
    assert [ps.decide("t", {}, CTX).decision for _ in range(3)] == ["allow", "allow", "deny"]
    assert ps.decide("t", {}, CTX).rule_ids == ("lim",)
    other_tenant = CallContext(tenant="bob", agent="support-1")
    assert ps.decide("t", {}, other_tenant).decision == "allow"  # keyed per tenant
    now[0] += 60.0
    assert ps.decide("t", {}, CTX).decision == "allow"  # the window slid


def test_denied_and_pending_calls_consume_no_budget() -> None:
    limits = [{"id": "lim", "tools": ["t"], "rate": "1/minute"}]
    ps = policy_set(
        policy_file(
            [
                rule("a", "allow"),
                rule("d", "deny", {"args.bad": {"equals": True}}),
                rule("q", "require_approval", {"args.big": {"equals": True}}),
            ],
            limits=limits,
        )
    )
    assert ps.decide("t", {"bad": True}, CTX).decision == "deny"
    assert ps.decide("t", {"bad": False, "big": True}, CTX).decision == "require_approval"
    assert ps.explain("t", {"bad": False, "big": False}, CTX)["limits"][0]["full"] is False
    assert ps.decide("t", {"bad": False, "big": False}, CTX).decision == "allow"
    assert ps.decide("t", {"bad": False, "big": False}, CTX).rule_ids == ("lim",)


def test_rate_limit_store_failure_denies() -> None:
    class Broken(InMemoryRateLimitStore):
        def try_acquire(self, checks: Any, now: float) -> str | None:
            raise OSError("disk gone")

    ps = PolicySet(
        [policy_file([rule("a", "allow")], limits=[{"id": "l", "tools": ["*"], "rate": "5/s"}])],
        rate_limits=Broken(),
    )
    assert ps.decide("t", {}, CTX).rule_ids == ("rate-limit-store",)


def test_engine_bug_denies() -> None:
    ps = policy_set(policy_file([rule("a", "allow")]))

    class Exploding(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise RuntimeError("boom")

        def __iter__(self) -> Any:
            raise RuntimeError("boom")

        def __len__(self) -> int:
            return 1

        def __contains__(self, key: object) -> bool:
            raise RuntimeError("boom")

    guarded = policy_set(policy_file([rule("a", "allow", {"args.x": {"equals": 1}})]))
    assert guarded.decide("t", Exploding(), CTX).rule_ids == ("policy-error",)
    assert ps.decide("t", {}, CTX).decision == "allow"


def test_explain_lists_every_applicable_rule() -> None:
    ps = policy_set(
        policy_file(
            [
                rule("a", "allow", {"args.n": {"lte": 3}}),
                rule("d", "deny", {"args.n": {"equals": 99}}),
            ]
        )
    )
    report = ps.explain("t", {"n": 5}, CTX)
    assert report["decision"]["rule_ids"] == ["default-deny"]
    results = {r["id"]: (r["result"], r["matched"]) for r in report["rules"]}
    assert results == {"a": ("no match", False), "d": ("no match", False)}


def test_explain_tells_an_error_from_a_missing_field() -> None:
    ps = policy_set(
        policy_file(
            [
                rule("a", "allow", {"args.n": {"lte": 3}}),
                rule("d", "deny", {"args.n": {"equals": 99}}),
            ]
        )
    )
    erred = {r["id"]: r for r in ps.explain("t", {"n": [1]}, CTX)["rules"]}
    assert (erred["a"]["result"], erred["a"]["matched"]) == ("error", False)
    assert (erred["d"]["result"], erred["d"]["matched"]) == ("error", True)
    assert erred["d"]["failed_conditions"] == [
        "args.n: equals 99 could not be evaluated: value is not a scalar"
    ]
    missing = {r["id"]: r for r in ps.explain("t", {}, CTX)["rules"]}
    assert (missing["d"]["result"], missing["d"]["matched"]) == ("no match", False)
    assert missing["a"]["failed_conditions"] == [
        "args.n: missing, so it does not hold (args.n {lte: 3})"
    ]


# ----------------------------------------------------------------- properties

TOOLS = ["t1", "t2"]
FIELD_TESTS = st.sampled_from(
    [
        {"args.a": {"equals": 1}},
        {"args.a": {"gt": 0}},
        {"args.b": {"in": ["x", "y"]}},
        {"args.b": {"exists": True}},
        {"args.c": {"max_len": 2}},
        {"not": {"args.a": {"lte": 1}}},
        {"any": [{"args.a": {"equals": 2}}, {"args.b": {"equals": "x"}}]},
    ]
)


@st.composite
def rules(
    draw: st.DrawFn, effects: tuple[str, ...] = ("allow", "deny", "require_approval")
) -> list[dict[str, Any]]:
    count = draw(st.integers(min_value=0, max_value=6))
    out = []
    for index in range(count):
        item = rule(
            f"r{index}",
            draw(st.sampled_from(effects)),
            tools=[draw(st.sampled_from([*TOOLS, "*"]))],
        )
        if draw(st.booleans()):
            item["when"] = draw(FIELD_TESTS)
        out.append(item)
    return out


CALLS = st.tuples(
    st.sampled_from(TOOLS),
    st.fixed_dictionaries(
        {},
        optional={
            "a": st.one_of(st.integers(-2, 3), st.floats(allow_nan=True), st.text(max_size=2)),
            "b": st.sampled_from(["x", "y", "z", 1]),
            "c": st.text(max_size=4),
        },
    ),
)
STRICTNESS = {"allow": 0, "require_approval": 1, "deny": 2}


@settings(max_examples=300, deadline=None)
@given(base=rules(), extra_when=st.one_of(st.none(), FIELD_TESTS), call=CALLS)
def test_adding_a_deny_never_loosens_a_decision(
    base: list[dict[str, Any]], extra_when: dict[str, Any] | None, call: tuple[str, dict[str, Any]]
) -> None:
    tool, args = call
    before = policy_set(policy_file(base)).preview(tool, args, CTX)
    after = policy_set(policy_file([*base, rule("extra-deny", "deny", extra_when, ["*"])])).preview(
        tool, args, CTX
    )
    assert STRICTNESS[after.decision] >= STRICTNESS[before.decision]
    if before.decision == "deny":
        assert after.decision == "deny"


@settings(max_examples=300, deadline=None)
@given(base=rules(effects=("deny", "require_approval")), call=CALLS)
def test_without_a_matching_allow_nothing_is_allowed(
    base: list[dict[str, Any]], call: tuple[str, dict[str, Any]]
) -> None:
    tool, args = call
    decision = policy_set(policy_file(base)).decide(tool, args, CTX)
    assert decision.decision != "allow"
    if not any(r["effect"] == "require_approval" for r in base):
        assert decision.decision == "deny"


@settings(max_examples=300, deadline=None)
@given(base=rules(), call=CALLS)
def test_an_allow_always_names_a_matching_allow_rule(
    base: list[dict[str, Any]], call: tuple[str, dict[str, Any]]
) -> None:
    tool, args = call
    ps = policy_set(policy_file(base))
    decision = ps.decide(tool, args, CTX)
    if decision.decision == "allow":
        allowed = {r["id"] for r in base if r["effect"] == "allow"}
        assert set(decision.rule_ids) <= allowed and decision.rule_ids
        report = ps.explain(tool, args, CTX)
        matched = {r["id"] for r in report["rules"] if r["result"] == "match"}
        assert set(decision.rule_ids) <= matched


@settings(max_examples=200, deadline=None)
@given(base=rules(), call=CALLS, seed=st.integers(0, 2**32))
def test_order_of_rules_and_files_does_not_matter(
    base: list[dict[str, Any]], call: tuple[str, dict[str, Any]], seed: int
) -> None:
    tool, args = call
    shuffled = list(base)
    random.Random(seed).shuffle(shuffled)
    half = len(shuffled) // 2
    one = policy_set(policy_file(base)).preview(tool, args, CTX)
    split = policy_set(policy_file(shuffled[half:], pid="b"), policy_file(shuffled[:half], pid="a"))
    two = split.preview(tool, args, CTX)
    assert (one.decision, one.rule_ids) == (two.decision, two.rule_ids)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_argument_never_allows_through_a_bound(value: float) -> None:
    ps = policy_set(policy_file([rule("a", "allow", {"args.amount": {"lte": 100}})]))
    assert ps.decide("t", {"amount": value}, CTX).decision == "deny"
    deny_big = policy_set(
        policy_file([rule("a", "allow"), rule("d", "deny", {"args.amount": {"gt": 100}})])
    )
    assert deny_big.decide("t", {"amount": value}, CTX).rule_ids == ("d",)
