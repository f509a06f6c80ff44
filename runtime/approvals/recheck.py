"""Re-checking arguments a human edited before approving: the gate's schema, then the policy.

The same two stages a proposed call goes through: `ArgumentGate.validate`
(the tool's JSON Schema) and the policy's declared `PolicyEngine.preview`
as an approved call (deny rules and limits still apply; nothing is consumed).
The resumed run validates and decides again just before the call runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from runtime.approvals.records import ApprovalError, ApprovalRecord, Recheck
from runtime.arguments import ArgumentGate, Rejection
from runtime.calls import ErrorInfo, ToolCallRequest
from runtime.policy.decision import PolicyDecision, PolicyEngine

__all__ = ["EditedArgumentsInvalid", "approval_recheck"]


class EditedArgumentsInvalid(ApprovalError, ValueError):
    """Edited arguments do not match the tool's schema; the approval stays pending.

    Attributes:
        error: The gate's rejection (`type` `schema` or `unknown_tool`, per-path details).
    """

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(f"the edited arguments are refused: {error.message}")
        self.error = error


def approval_recheck(policy: PolicyEngine, gate: ArgumentGate | None = None) -> Recheck:
    """A `Recheck` for `ApprovalStore.approve`: validate with `gate`, then re-decide.

    Args:
        policy: Re-decides the arguments as an approved call (`preview`,
            consuming no rate-limit budget).
        gate: Validates them against the tool's schema; without one only the
            policy is checked here (the resumed run still validates).

    Raises (from the returned function):
        EditedArgumentsInvalid: `gate` has no such tool, or the arguments do
            not match its schema.
    """

    def recheck(record: ApprovalRecord, arguments: Mapping[str, Any]) -> PolicyDecision:
        checked_arguments = dict(arguments)
        if gate is not None:
            tool = gate.registry.get(record.tool)
            if tool is None:
                raise EditedArgumentsInvalid(
                    ErrorInfo(
                        type="unknown_tool",
                        message=f"the given tools define no tool {record.tool!r}",
                    )
                )
            request = ToolCallRequest(record.call_id, record.tool, json.dumps(checked_arguments))
            checked = gate.validate(request, tool, checked_arguments)
            if isinstance(checked, Rejection):
                raise EditedArgumentsInvalid(checked.error)
            checked_arguments = checked.arguments
        return policy.preview(record.tool, checked_arguments, record.call_context(), approved=True)

    return recheck
