"""`PolicySet`: the loaded, compiled policy files, deciding one call at a time.

Combining, over every file whose scope matches the caller (order of files and
rules never matters):

1. any matching `deny` rule → `deny`;
2. else any matching `require_approval` rule → `require_approval`;
3. else a matching `allow` rule, if every limit that applies to the call has
   room (which consumes one slot in each) → `allow`;
4. else `deny` by `default-deny`.

A condition on a missing field is false in every rule (`exists` requires
presence). A present value that cannot be judged (wrong type, NaN, NUL in a
path, an unparsable URL or IP, a URL with userinfo, a regex on a number or on
too long a string) is an evaluation error: it counts as a match for deny and
require_approval rules and as no match for allow rules. An exception inside
the engine denies the call (`policy-error`) rather than letting it through.

Everything is compiled at load; `decide` does a dict lookup for the rules
that apply to (tool, tenant, agent) and evaluates only those.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from runtime.calls import CallContext
from runtime.policy.conditions import (
    ERROR,
    TRUE,
    AllNode,
    AnyNode,
    Node,
    NotNode,
    build_field_test,
    is_missing,
    lookup,
)
from runtime.policy.decision import PolicyDecision
from runtime.policy.model import AllOf, AnyOf, Condition, Limit, NotOf, Operators, PolicyFile
from runtime.policy.ratelimit import (
    DEFAULT_RATE_LIMIT_DB,
    LimitCheck,
    RateLimitStore,
    SQLiteRateLimitStore,
)

__all__ = ["PolicySet"]

_log = logging.getLogger(__name__)

# Cheap operators first so a failing bound short-circuits before a regex runs.
_OP_ORDER = (
    "exists",
    "equals",
    "in_",
    "not_in",
    "max_len",
    "max_items",
    "gt",
    "gte",
    "lt",
    "lte",
    "prefix",
    "contains",
    "path_under",
    "ip_in",
    "url",
    "regex",
)
_CACHE_MAX = 4096


def _compile(condition: Condition) -> Node:
    if isinstance(condition, AllOf):
        return AllNode([_compile(child) for child in condition.all])
    if isinstance(condition, AnyOf):
        return AnyNode([_compile(child) for child in condition.any])
    if isinstance(condition, NotOf):
        return NotNode(_compile(condition.not_))
    tests = [_compile_field(field, ops) for field, ops in condition.items()]
    return tests[0] if len(tests) == 1 else AllNode(tests)


def _compile_field(field: str, ops: Operators) -> Node:
    chosen = [
        (name.rstrip("_"), getattr(ops, name)) for name in _OP_ORDER if name in ops.model_fields_set
    ]
    return build_field_test(field, chosen)


@dataclasses.dataclass(frozen=True, slots=True)
class _Rule:
    id: str
    policy_id: str
    effect: str
    tools: tuple[str, ...]
    condition: Node | None
    reason: str | None
    timeout_s: float | None
    grants: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class _Limit:
    id: str
    policy_id: str
    tools: tuple[str, ...]
    per: tuple[str, ...]
    rate: str
    capacity: int
    window_s: float


@dataclasses.dataclass(frozen=True, slots=True)
class _File:
    policy_id: str
    tenants: tuple[str, ...] | None
    agents: tuple[str, ...] | None
    rules: tuple[_Rule, ...]
    limits: tuple[_Limit, ...]

    def in_scope(self, tenant: str | None, agent: str | None) -> bool:
        for globs, value in ((self.tenants, tenant), (self.agents, agent)):
            if globs is not None and (
                value is None or not any(fnmatchcase(value, g) for g in globs)
            ):
                return False
        return True


@dataclasses.dataclass(frozen=True, slots=True)
class _Applicable:
    """The rules and limits one (tool, tenant, agent) triple is subject to."""

    deny: tuple[_Rule, ...]
    approval: tuple[_Rule, ...]
    allow: tuple[_Rule, ...]
    limits: tuple[_Limit, ...]
    policy_ids: tuple[str, ...]


def _compile_file(policy: PolicyFile) -> _File:
    pid = policy.metadata.id
    rules = tuple(
        _Rule(
            id=rule.id,
            policy_id=pid,
            effect=rule.effect,
            tools=tuple(rule.tools),
            condition=_compile(rule.when) if rule.when is not None else None,
            reason=rule.reason,
            grants=tuple(sorted(set(rule.grants))),
            timeout_s=(
                (rule.approval.timeout_s if rule.approval else 900.0)
                if rule.effect == "require_approval"
                else None
            ),
        )
        for rule in policy.rules
    )
    limits = tuple(_compile_limit(pid, limit) for limit in policy.limits)
    scope = policy.scope
    return _File(
        policy_id=pid,
        tenants=tuple(scope.tenants) if scope.tenants is not None else None,
        agents=tuple(scope.agents) if scope.agents is not None else None,
        rules=rules,
        limits=limits,
    )


def _compile_limit(policy_id: str, limit: Limit) -> _Limit:
    return _Limit(
        id=limit.id,
        policy_id=policy_id,
        tools=tuple(limit.tools),
        per=tuple(limit.per),
        rate=limit.rate,
        capacity=limit.capacity,
        window_s=limit.window_s,
    )


def canonical_sha256(policies: Sequence[PolicyFile]) -> str:
    """SHA-256 of the policy set's meaning, not its text.

    Files are dumped without defaults, sorted by `metadata.id`, as JSON with
    sorted keys: comments, key order, quoting and file names do not change it.
    """
    dumps = sorted(
        (p.model_dump(mode="json", by_alias=True, exclude_defaults=True) for p in policies),
        key=lambda d: str(d["metadata"]["id"]),
    )
    text = json.dumps(dumps, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class PolicySet:
    """A loaded policy set; implements the `PolicyEngine` protocol.

    Build one with `runtime.policy.loader.load_policies(DIR)`, which validates
    the files; constructing directly from `PolicyFile` models is for tests.

    Args:
        policies: The validated files.
        rate_limits: Where windows live. None opens the SQLite store at
            `.agentrt/ratelimits.db` the first time a limit is consulted.
        clock: Wall-clock seconds; inject a fake one in tests.
        sources: The files the policies came from, for display.
    """

    def __init__(
        self,
        policies: Sequence[PolicyFile],
        *,
        rate_limits: RateLimitStore | None = None,
        clock: Callable[[], float] = time.time,
        sources: Sequence[Path] = (),
    ) -> None:
        self.policies = tuple(policies)
        self.sources = tuple(sources)
        self.sha256 = canonical_sha256(self.policies)
        self._files = tuple(_compile_file(p) for p in self.policies)
        self._rate_limits = rate_limits
        self._owns_store = rate_limits is None
        self._clock = clock
        self._cache: dict[tuple[str, str | None, str | None], _Applicable] = {}
        self._allow_cache: dict[tuple[str, ...], PolicyDecision] = {}
        redact: set[str] = set()
        for policy in self.policies:
            if policy.audit is not None:
                redact.update(policy.audit.redact)
        self._redact_paths = tuple(sorted(redact))

    # ------------------------------------------------------------------ facts

    @property
    def redact_paths(self) -> tuple[str, ...]:
        """Argument paths (`args.password`) the audit log must redact, from every file."""
        return self._redact_paths

    @property
    def policy_ids(self) -> tuple[str, ...]:
        """`metadata.id` of every file, sorted."""
        return tuple(sorted(f.policy_id for f in self._files))

    @property
    def rate_limits(self) -> RateLimitStore:
        """The window store, opened on first use."""
        if self._rate_limits is None:
            self._rate_limits = SQLiteRateLimitStore(DEFAULT_RATE_LIMIT_DB)
        return self._rate_limits

    def close(self) -> None:
        """Close the rate-limit store if this set opened one."""
        if self._owns_store and self._rate_limits is not None:
            self._rate_limits.close()
            self._rate_limits = None

    # ------------------------------------------------------------------ deciding

    def decide(
        self, tool: str, arguments: Mapping[str, Any], context: CallContext
    ) -> PolicyDecision:
        """Decide one validated call; consumes rate-limit budget only for an `allow`."""
        try:
            return self._decide(tool, arguments, context, approved=False, consume=True)
        except Exception:  # a bug must deny, never allow
            _log.exception("policy engine failed; denying %s", tool)
            return self._policy_error()

    def decide_approved(
        self, tool: str, arguments: Mapping[str, Any], context: CallContext
    ) -> PolicyDecision:
        """Re-decide a call a human approved, just before it runs (or is edited).

        Deny rules still deny and limits still count (and are consumed on
        `allow`); matching require_approval rules count as satisfied, so the
        call is allowed if they match or an allow rule matches. Never returns
        `require_approval`. Use it for edit-then-approve: edited arguments
        that now hit a deny rule are refused.
        """
        try:
            return self._decide(tool, arguments, context, approved=True, consume=True)
        except Exception:
            _log.exception("policy engine failed; denying approved %s", tool)
            return self._policy_error()

    def preview(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        context: CallContext,
        *,
        approved: bool = False,
    ) -> PolicyDecision:
        """Decide without consuming rate-limit budget (explain, approval re-checks).

        Unlike `decide`, an engine failure raises instead of denying.
        """
        return self._decide(tool, arguments, context, approved=approved, consume=False)

    def explain(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        context: CallContext,
        *,
        approved: bool = False,
    ) -> dict[str, Any]:
        """The decision plus every applicable rule's verdict; consumes nothing.

        Returns:
            `{"decision": {...}, "policies": [...], "rules": [...], "limits": [...]}`.
        """
        decision = self.preview(tool, arguments, context, approved=approved)
        app = self._applicable(tool, context.tenant, context.agent)
        rules = []
        for rule in (*app.deny, *app.approval, *app.allow):
            result, failures = (
                rule.condition.explain(arguments, context) if rule.condition else (TRUE, [])
            )
            rules.append(
                {
                    "id": rule.id,
                    "policy": rule.policy_id,
                    "effect": rule.effect,
                    "result": {TRUE: "match", ERROR: "error"}.get(result, "no match"),
                    "matched": _counts(rule, result),
                    "failed_conditions": failures,
                }
            )
        limits = []
        for limit in app.limits:
            check = self._limit_check(limit, tool, arguments, context)
            full = self.rate_limits.peek([check], self._clock()) is not None
            limits.append(
                {"id": limit.id, "rate": limit.rate, "per": list(limit.per), "full": full}
            )
        return {
            "decision": decision.to_dict(),
            "policies": list(app.policy_ids),
            "rules": rules,
            "limits": limits,
        }

    def _decide(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        context: CallContext,
        *,
        approved: bool,
        consume: bool,
    ) -> PolicyDecision:
        app = self._applicable(tool, context.tenant, context.agent)
        denied = [r for r in app.deny if _hits(r, arguments, context)]
        if denied:
            return self._deny(tool, denied, app, arguments, context)
        waiting = [r for r in app.approval if _hits(r, arguments, context)]
        if waiting and not approved:
            return self._needs_approval(waiting)
        allowed = [r for r in app.allow if _hits(r, arguments, context)]
        granted = waiting + allowed
        if not granted:
            return self._default_deny(tool, app, arguments, context)
        if app.limits:
            checks = [self._limit_check(lim, tool, arguments, context) for lim in app.limits]
            try:
                store = self.rate_limits
                now = self._clock()
                full = store.try_acquire(checks, now) if consume else store.peek(checks, now)
            except Exception:
                _log.exception("rate-limit store failed; denying %s", tool)
                return PolicyDecision(
                    decision="deny",
                    rule_ids=("rate-limit-store",),
                    reason="the rate-limit store is unavailable, so the call is denied",
                    policy_sha256=self.sha256,
                )
            if full is not None:
                limit = next(lim for lim in app.limits if lim.id == full)
                per = ", ".join(limit.per) if limit.per else "all callers"
                return PolicyDecision(
                    decision="deny",
                    rule_ids=(limit.id,),
                    reason=f"rate limit {limit.id!r} ({limit.rate} per {per}) is exhausted; "
                    "try again later",
                    policy_sha256=self.sha256,
                )
        return self._allow(granted, approved=approved and bool(waiting))

    def _applicable(self, tool: str, tenant: str | None, agent: str | None) -> _Applicable:
        key = (tool, tenant, agent)
        found = self._cache.get(key)
        if found is not None:
            return found
        buckets: dict[str, list[_Rule]] = {"deny": [], "require_approval": [], "allow": []}
        limits: list[_Limit] = []
        policy_ids: list[str] = []
        for file in self._files:
            if not file.in_scope(tenant, agent):
                continue
            policy_ids.append(file.policy_id)
            for rule in file.rules:
                if any(fnmatchcase(tool, glob) for glob in rule.tools):
                    buckets[rule.effect].append(rule)
            limits.extend(
                lim for lim in file.limits if any(fnmatchcase(tool, g) for g in lim.tools)
            )
        found = _Applicable(
            deny=tuple(buckets["deny"]),
            approval=tuple(buckets["require_approval"]),
            allow=tuple(buckets["allow"]),
            limits=tuple(sorted(limits, key=lambda lim: lim.id)),
            policy_ids=tuple(sorted(policy_ids)),
        )
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()  # many distinct tenants: start over rather than grow
        self._cache[key] = found
        return found

    def _limit_check(
        self, limit: _Limit, tool: str, arguments: Mapping[str, Any], context: CallContext
    ) -> LimitCheck:
        values: list[Any] = []
        for name in limit.per:
            if name == "tool":
                value: Any = tool
            else:
                source, _, path = name.partition(".")
                if not path:  # a bare context name: tenant, agent, ...
                    source, path = "context", name
                value = lookup(arguments, context, source, path.split("."))
                if is_missing(value):
                    value = None  # callers without the value share one window
            values.append(value)
        key = json.dumps(
            [limit.id, values], separators=(",", ":"), sort_keys=True, default=lambda _: None
        )
        return LimitCheck(limit.id, key, limit.capacity, limit.window_s)

    # ------------------------------------------------------------------ decisions

    def _allow(self, granted: list[_Rule], *, approved: bool) -> PolicyDecision:
        ids = (granted[0].id,) if len(granted) == 1 else tuple(sorted({r.id for r in granted}))
        cache_key = (*ids, "+approved") if approved else ids
        decision = self._allow_cache.get(cache_key)
        if decision is None:
            named = ", ".join(repr(i) for i in ids)
            reason = (
                f"approved by a human (rules {named})" if approved else f"allowed by rule {named}"
            )
            grants = tuple(sorted({grant for rule in granted for grant in rule.grants}))
            decision = PolicyDecision(
                decision="allow",
                rule_ids=ids,
                reason=reason,
                policy_sha256=self.sha256,
                grants=grants,
            )
            self._allow_cache[cache_key] = decision
        return decision

    def _needs_approval(self, waiting: list[_Rule]) -> PolicyDecision:
        waiting = sorted(waiting, key=lambda r: r.id)
        custom = [r.reason for r in waiting if r.reason]
        names = ", ".join(repr(r.id) for r in waiting)
        reason = custom[0] if custom else f"rule {names} requires a human to approve this call"
        timeouts = [r.timeout_s for r in waiting if r.timeout_s is not None]
        return PolicyDecision(
            decision="require_approval",
            rule_ids=tuple(r.id for r in waiting),
            reason=reason,
            policy_sha256=self.sha256,
            approval_timeout_s=min(timeouts) if timeouts else 900.0,
        )

    def _deny(
        self,
        tool: str,
        denied: list[_Rule],
        app: _Applicable,
        arguments: Mapping[str, Any],
        context: CallContext,
    ) -> PolicyDecision:
        denied = sorted(denied, key=lambda r: r.id)
        first = denied[0]
        names = ", ".join(repr(r.id) for r in denied)
        if first.reason:
            reason = first.reason
        else:
            reason = f"call to {tool!r} denied by rule {names} (policy {first.policy_id!r})"
        erred = [
            r
            for r in denied
            if r.condition is not None and r.condition.evaluate(arguments, context) == ERROR
        ]
        if erred:
            reason += (
                "; a value it tests could not be evaluated, which counts as a match for a deny rule"
            )
        return PolicyDecision(
            decision="deny",
            rule_ids=tuple(r.id for r in denied),
            reason=reason,
            failed_conditions=self._nearest_allow(app, arguments, context)[1],
            policy_sha256=self.sha256,
        )

    def _default_deny(
        self, tool: str, app: _Applicable, arguments: Mapping[str, Any], context: CallContext
    ) -> PolicyDecision:
        nearest, failures = self._nearest_allow(app, arguments, context)
        if nearest is None:
            who = f"tenant {context.tenant!r}, agent {context.agent!r}"
            reason = f"no policy allows tool {tool!r} for {who} (default deny)"
        else:
            reason = (
                f"call to {tool!r} matches no allow rule (default deny); nearest rule "
                f"{nearest.id!r} failed: " + "; ".join(failures)
            )
        return PolicyDecision(
            decision="deny",
            rule_ids=("default-deny",),
            reason=reason,
            failed_conditions=failures,
            policy_sha256=self.sha256,
        )

    def _nearest_allow(
        self, app: _Applicable, arguments: Mapping[str, Any], context: CallContext
    ) -> tuple[_Rule | None, tuple[str, ...]]:
        best: tuple[int, str, _Rule, list[str]] | None = None
        for rule in app.allow:
            if rule.condition is None:
                return rule, ()
            result, failures = rule.condition.explain(arguments, context)
            if result == TRUE:
                return rule, ()
            candidate = (len(failures), rule.id, rule, failures)
            if best is None or candidate[:2] < best[:2]:
                best = candidate
        if best is None:
            return None, ()
        return best[2], tuple(best[3])

    def _policy_error(self) -> PolicyDecision:
        return PolicyDecision(
            decision="deny",
            rule_ids=("policy-error",),
            reason="the policy engine failed while deciding, so the call is denied",
            policy_sha256=self.sha256,
        )


def _hits(rule: _Rule, arguments: Mapping[str, Any], context: CallContext) -> bool:
    if rule.condition is None:
        return True
    return _counts(rule, rule.condition.evaluate(arguments, context))


def _counts(rule: _Rule, result: int) -> bool:
    """Whether a rule's condition result makes it apply: errors fail closed both ways."""
    return result == TRUE or (result == ERROR and rule.effect != "allow")
