"""The value the policy stage returns for one call, and the seam it plugs into."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from runtime.calls import CallContext

Effect = Literal["allow", "deny", "require_approval"]


@dataclasses.dataclass(frozen=True, slots=True)
class PolicyDecision:
    """Why a call may run, may not, or needs a human.

    Attributes:
        decision: `allow`, `deny` or `require_approval`.
        rule_ids: The rules (and limits) that decided, e.g. `["deny-secrets"]`
            or `["default-deny"]`.
        reason: One human sentence, shown to the model and the auditor.
        failed_conditions: For a denial, the conditions of the nearest allow
            rule that did not hold (what the caller would have to change).
        policy_sha256: Digest of the policy set that decided.
        approval_timeout_s: How long a pending approval may wait.
        grants: Sandbox capabilities the allowing rules grant (e.g. `network`).
    """

    decision: Effect
    rule_ids: tuple[str, ...] = ()
    reason: str = ""
    failed_conditions: tuple[str, ...] = ()
    policy_sha256: str = ""
    approval_timeout_s: float | None = None
    grants: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "decision": self.decision,
            "rule_ids": list(self.rule_ids),
            "reason": self.reason,
            "failed_conditions": list(self.failed_conditions),
            "policy_sha256": self.policy_sha256,
        }
        if self.approval_timeout_s is not None:
            out["approval_timeout_s"] = self.approval_timeout_s
        if self.grants:
            out["grants"] = list(self.grants)
        return out


class PolicyEngine(Protocol):
    """Decides whether a validated call may run. Must be fast: it sits on every call."""

    def decide(
        self, tool: str, arguments: Mapping[str, Any], context: CallContext
    ) -> PolicyDecision:
        """Return the decision; consumes rate-limit budget only for an `allow`."""
        ...

    def decide_approved(
        self, tool: str, arguments: Mapping[str, Any], context: CallContext
    ) -> PolicyDecision:
        """Re-decide a call a human approved, just before it runs: deny rules and
        limits still apply; approval rules count as satisfied."""
        ...

    def preview(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        context: CallContext,
        *,
        approved: bool = False,
    ) -> PolicyDecision:
        """Decide without consuming anything (rate-limit budget): for `policy
        explain` and the re-check of arguments a human edited before approving."""
        ...


ALLOW_ALL = PolicyDecision(
    decision="allow",
    rule_ids=("no-policy",),
    reason="allowed: no policy rules (allow_all() runs every call that validates)",
)
NO_POLICY = PolicyDecision(
    decision="deny",
    rule_ids=("no-policy",),
    reason=(
        "no policy is configured, so no tool runs: give the agent a policy "
        "(load_policies(DIR)), or policy=allow_all() to run every valid call"
    ),
)


class _FixedPolicy:
    """A policy whose every answer, for every call, is `DECISION`."""

    DECISION: PolicyDecision

    def decide(
        self, tool: str, arguments: Mapping[str, Any], context: CallContext
    ) -> PolicyDecision:
        return self.DECISION

    def decide_approved(
        self, tool: str, arguments: Mapping[str, Any], context: CallContext
    ) -> PolicyDecision:
        return self.DECISION

    def preview(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        context: CallContext,
        *,
        approved: bool = False,
    ) -> PolicyDecision:
        return self.DECISION


class AllowAllPolicy(_FixedPolicy):
    """Every call that validates may run: the explicit opt-out of the policy stage.

    Build it with `allow_all()`; nothing chooses it for you.
    """

    DECISION = ALLOW_ALL


class NoPolicy(_FixedPolicy):
    """What a pipeline or agent built without a policy uses: it denies every call.

    Safe by default: forgetting the policy stops tools instead of allowing them.
    """

    DECISION = NO_POLICY


def allow_all() -> AllowAllPolicy:
    """A policy that allows every call that passes the argument gate.

    Pass it explicitly (`Agent(..., policy=allow_all())`) for trusted tools in
    tests and notebooks: an agent without a policy runs no tool at all.
    """
    return AllowAllPolicy()
