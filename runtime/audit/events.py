"""The audit vocabulary: event names and record field names, in one place.

Every writer (the call pipeline, the agent loop, the log's own recovery
record) and every reader (`query`, `stats`, the CLI table, tracing,
redaction) spells a record's keys through these constants, so a reader
cannot look for a key no writer writes.

Field names follow the OpenTelemetry GenAI conventions where one exists
(`gen_ai.tool.name`, ...) and use `agentrt.*` otherwise.

**Every call ends in exactly one record carrying `Field.STATUS`**, whose
event is one of `CALL_END_EVENTS`:

- `tool.rejected`: refused before the policy (unknown tool, invalid
  arguments, more calls than a turn allows);
- `tool.denied`: the policy (or the re-check of an approved call) denied it;
- `approval.requested`: it waits for a human (`pending_approval`);
- `approval.rejected` / `approval.expired`: a human said no, or no one
  answered in time (`denied`);
- `execution.finished`: it ran (`ok`, `tool_error`, `timeout`, ...).

A call that waited for approval therefore has two such records: the first
process's `pending_approval`, then, when the run resumes, the final status
of the approved (or rejected) call. `run.finished` carries the *run's*
status under the same key, but is no call record: it has no
`gen_ai.tool.call.id` and is not in `CALL_END_EVENTS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["CALL_END_EVENTS", "Event", "Field", "is_call_end"]


class Event:
    """The `event` of a record: the step of a call or run it records."""

    TOOL_PROPOSED: Final = "tool.proposed"
    TOOL_VALIDATED: Final = "tool.validated"
    TOOL_REJECTED: Final = "tool.rejected"
    TOOL_DENIED: Final = "tool.denied"
    POLICY_DECIDED: Final = "policy.decided"
    APPROVAL_REQUESTED: Final = "approval.requested"
    APPROVAL_GRANTED: Final = "approval.granted"
    APPROVAL_REJECTED: Final = "approval.rejected"
    APPROVAL_EXPIRED: Final = "approval.expired"
    EXECUTION_STARTED: Final = "execution.started"
    EXECUTION_FINISHED: Final = "execution.finished"
    RUN_STARTED: Final = "run.started"
    RUN_RESUMED: Final = "run.resumed"
    RUN_FINISHED: Final = "run.finished"
    AUDIT_RECOVERED: Final = "audit.recovered"


class Field:
    """Names of the keys of a record's `fields`."""

    # Who and what (OpenTelemetry GenAI names).
    OPERATION_NAME: Final = "gen_ai.operation.name"
    TOOL_NAME: Final = "gen_ai.tool.name"
    TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
    AGENT_NAME: Final = "gen_ai.agent.name"
    CONVERSATION_ID: Final = "gen_ai.conversation.id"
    REQUEST_MODEL: Final = "gen_ai.request.model"
    USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
    USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
    TENANT: Final = "agentrt.tenant"
    PRINCIPAL: Final = "agentrt.principal"
    RUN_ID: Final = "agentrt.run_id"

    # How a call or run ended.
    STATUS: Final = "agentrt.status"
    DURATION_MS: Final = "agentrt.duration_ms"
    ERROR_TYPE: Final = "error.type"
    ERROR_MESSAGE: Final = "agentrt.error.message"
    ERROR_DETAILS: Final = "agentrt.error.details"

    # The policy stage.
    DECISION: Final = "agentrt.decision"
    RULE_IDS: Final = "agentrt.rule_ids"
    POLICY_SHA256: Final = "agentrt.policy_sha256"
    REASON: Final = "agentrt.reason"
    APPROVED: Final = "agentrt.approved"

    # Approvals.
    APPROVAL_ID: Final = "agentrt.approval_id"
    APPROVAL_EDITED: Final = "agentrt.approval.edited"

    # Content: the sink redacts, hashes or drops these (see `Redactor`).
    ARGUMENTS: Final = "agentrt.tool.arguments"
    ARGUMENTS_RAW: Final = "agentrt.tool.arguments_raw"
    ARGUMENTS_HMAC: Final = "agentrt.tool.arguments_hmac"
    RESULT: Final = "agentrt.tool.result"
    STDOUT: Final = "agentrt.tool.stdout"
    STDERR: Final = "agentrt.tool.stderr"

    # The sandbox.
    SANDBOX_MODE: Final = "agentrt.sandbox.mode"
    SANDBOX_CONTAINER_ID: Final = "agentrt.sandbox.container_id"
    SANDBOX_IMAGE: Final = "agentrt.sandbox.image"
    EXIT_CODE: Final = "agentrt.exit_code"

    # The run (kept only with `audit_conversation`).
    PROMPT: Final = "agentrt.prompt"
    OUTPUT: Final = "agentrt.output"
    REASONING: Final = "agentrt.reasoning"

    # The log's own recovery record.
    RECOVERY_REASON: Final = "agentrt.recovery.reason"
    RECOVERY_DROPPED_BYTES: Final = "agentrt.recovery.dropped_bytes"
    RECOVERY_DROPPED_SHA256: Final = "agentrt.recovery.dropped_sha256"
    RECOVERY_CHECKPOINT_SEQ: Final = "agentrt.recovery.checkpoint_seq"
    RECOVERY_RESUMED_SEQ: Final = "agentrt.recovery.resumed_seq"


#: The events that end a call; each carries `Field.STATUS`.
CALL_END_EVENTS: Final = frozenset(
    {
        Event.TOOL_REJECTED,
        Event.TOOL_DENIED,
        Event.APPROVAL_REQUESTED,
        Event.APPROVAL_REJECTED,
        Event.APPROVAL_EXPIRED,
        Event.EXECUTION_FINISHED,
    }
)


def is_call_end(event: str, fields: Mapping[str, Any]) -> bool:
    """True for the one record that ends a call (its final status)."""
    return event in CALL_END_EVENTS and Field.STATUS in fields
