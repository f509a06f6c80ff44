"""What the service's routes and its approvals page share: tokens, redaction, the audit view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.approvals import ApprovalRecord
from runtime.audit.events import Field as AuditField
from runtime.audit.redaction import Redactor
from runtime.service.runner import RunService, ServiceError
from runtime.service.tokens import Identity, Tokens

__all__ = ["ServiceApp", "Unauthorized", "audit_view"]


class Unauthorized(ServiceError):
    status_code, type = 401, "unauthorized"


class ServiceApp:
    """The pieces the routes share (kept on `app.state.agentrt`)."""

    def __init__(
        self,
        service: RunService,
        tokens: Tokens,
        *,
        audit_log: Path | None,
        max_body_bytes: int,
    ) -> None:
        self.service = service
        self.tokens = tokens
        self.audit_log = audit_log
        self.max_body_bytes = max_body_bytes
        self.redactor = Redactor(redact_paths=getattr(service.stack.policy, "redact_paths", ()))

    def identity_of(self, token: str | None) -> Identity:
        if not token:
            raise Unauthorized("missing bearer token: send Authorization: Bearer TOKEN")
        found = self.tokens.check(token)
        if found is None:
            raise Unauthorized("invalid or expired token")
        return found

    def redact(self, arguments: Any) -> Any:
        return self.redactor.redact_fields({AuditField.ARGUMENTS: arguments})[AuditField.ARGUMENTS]

    def approval_view(self, record: ApprovalRecord, now: float) -> dict[str, Any]:
        """An approval as a tenant sees it: arguments redacted as the policy says."""
        outcome = record.outcome if isinstance(record.outcome, dict) else None
        return {
            "id": record.id,
            "run_id": record.run_id,
            "call_id": record.call_id,
            "tool": record.tool,
            "status": str(record.status),
            "arguments": self.redact(record.arguments),
            "edited_arguments": self.redact(record.edited_arguments)
            if record.edited_arguments is not None
            else None,
            "rule_ids": list(record.decision.get("rule_ids") or []),
            "reason": record.decision.get("reason"),
            "agent": record.context.get("agent"),
            "created_at": record.created_at,
            "expires_at": record.expires_at,
            "age_s": max(0.0, now - record.created_at),
            "decided_by": record.decided_by,
            "note": record.note,
            "outcome": {"status": outcome.get("status"), "error": outcome.get("error")}
            if outcome
            else None,
        }


def audit_view(
    audit_log: Path | None,
    tenant: str,
    tool: str | None,
    status: str | None,
    since: str | None,
    until: str | None,
    limit: int,
) -> dict[str, Any]:
    """Query this replica's audit log for one tenant, and verify its chain."""
    from runtime.audit.query import RecordFilter, iter_records, parse_time
    from runtime.audit.verify import verify

    if audit_log is None or not audit_log.exists():
        return {"records": [], "verified": None, "log": None}
    try:
        spec = RecordFilter(
            tenant=tenant,
            tool=tool or None,
            status=status or None,
            since=parse_time(since) if since else None,
            until=parse_time(until) if until else None,
        )
    except ValueError as exc:
        raise ServiceError(str(exc), type="invalid_query") from None
    records = [record for _, record in iter_records([audit_log], spec)]
    report = verify([audit_log])
    problem = report.first_problem
    return {
        "records": records[-limit:],
        "matched": len(records),
        "verified": {
            "ok": report.ok,
            "records": report.records,
            "problem": problem.model_dump() if problem is not None else None,
        },
    }
