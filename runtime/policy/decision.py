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


ALLOW_ALL = PolicyDecision(decision="allow", rule_ids=("no-policy",), reason="no policy configured")


class AllowAllPolicy:
    """The policy used when none is configured: everything that validates may run."""

    def decide(
        self, tool: str, arguments: Mapping[str, Any], context: CallContext
    ) -> PolicyDecision:
        return ALLOW_ALL

    def decide_approved(
        self, tool: str, arguments: Mapping[str, Any], context: CallContext
    ) -> PolicyDecision:
        return ALLOW_ALL
