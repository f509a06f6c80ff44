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

**Every record is built by one function per event** below (`tool_proposed`,
`policy_decided`, `execution_finished`, ...), each returning a `Record`; the
pipeline, the agent loop and the approval resume only call them and write
the result, so the shape of each event lives in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from runtime.calls import CallStatus

if TYPE_CHECKING:
    from runtime.audit.sink import AuditSink
    from runtime.calls import CallContext, ErrorInfo, ExecutionResult
    from runtime.policy.decision import PolicyDecision

__all__ = [
    "CALL_END_EVENTS",
    "RAW_ARGUMENTS_CAP",
    "Event",
    "Field",
    "Record",
    "approval_closed",
    "approval_granted",
    "approval_requested",
    "audit_recovered",
    "call_fields",
    "execution_finished",
    "execution_started",
    "is_call_end",
    "mcp_tool_fields",
    "policy_decided",
    "run_finished",
    "run_started",
    "tool_denied",
    "tool_proposed",
    "tool_rejected",
    "tool_validated",
    "write",
]

#: Raw model text kept in `tool.proposed` (the sink caps and redacts it further).
RAW_ARGUMENTS_CAP = 4096


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

    # A tool from an MCP server: which server, and the pinned definition's digest.
    MCP_SERVER: Final = "agentrt.mcp.server"
    MCP_PIN_SHA256: Final = "agentrt.mcp.pin_sha256"

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


class Record(NamedTuple):
    """One audit record before the sink redacts and chains it."""

    event: str
    fields: dict[str, Any]


def write(sink: AuditSink, record: Record) -> None:
    """Append `record` to `sink` (raises `AuditWriteError` when it cannot)."""
    sink.write(record.event, record.fields)


# -- the fields every record of one call carries -------------------------------


def call_fields(
    tool: str,
    call_id: str,
    context: CallContext,
    *,
    agent_name: str | None = None,
    model_name: str | None = None,
) -> dict[str, Any]:
    """Who made which call: the identity fields every record of one call starts with."""
    fields: dict[str, Any] = {
        Field.OPERATION_NAME: "execute_tool",
        Field.TOOL_NAME: tool,
        Field.TOOL_CALL_ID: call_id,
    }
    for key, value in (
        (Field.AGENT_NAME, context.agent or agent_name),
        (Field.CONVERSATION_ID, context.conversation_id),
        (Field.REQUEST_MODEL, model_name),
        (Field.TENANT, context.tenant),
        (Field.PRINCIPAL, context.principal),
        (Field.RUN_ID, context.run_id),
    ):
        if value is not None:
            fields[key] = value
    return fields


def mcp_tool_fields(server_id: str, pin_sha256: str) -> dict[str, Any]:
    """What every record of a call to an MCP server's tool adds: the server and its pin."""
    return {Field.MCP_SERVER: server_id, Field.MCP_PIN_SHA256: pin_sha256}


# -- one builder per call event --------------------------------------------------


def tool_proposed(call: Mapping[str, Any], raw_arguments: str) -> Record:
    """The model proposed a call; `raw_arguments` as it wrote them (capped)."""
    return Record(
        Event.TOOL_PROPOSED, {**call, Field.ARGUMENTS_RAW: raw_arguments[:RAW_ARGUMENTS_CAP]}
    )


def tool_validated(call: Mapping[str, Any], arguments: Mapping[str, Any]) -> Record:
    """The arguments parsed strictly and match the tool's schema."""
    return Record(Event.TOOL_VALIDATED, {**call, Field.ARGUMENTS: dict(arguments)})


def tool_rejected(
    call: Mapping[str, Any],
    status: str,
    error: ErrorInfo,
    arguments: Mapping[str, Any] | None = None,
) -> Record:
    """The call ended before the policy: unknown tool, invalid arguments, too many calls."""
    fields = {
        **call,
        Field.STATUS: status,
        Field.ERROR_TYPE: error.type,
        Field.ERROR_MESSAGE: error.message,
    }
    if arguments is not None:
        fields[Field.ARGUMENTS] = dict(arguments)
    return Record(Event.TOOL_REJECTED, fields)


def policy_decided(
    call: Mapping[str, Any], decision: PolicyDecision, *, approved: bool = False
) -> Record:
    """The policy's decision (`approved`: re-decided for a call a human approved)."""
    fields = {
        **call,
        Field.DECISION: decision.decision,
        Field.RULE_IDS: list(decision.rule_ids),
        Field.POLICY_SHA256: decision.policy_sha256,
        Field.REASON: decision.reason,
    }
    if approved:
        fields[Field.APPROVED] = True
    return Record(Event.POLICY_DECIDED, fields)


def tool_denied(call: Mapping[str, Any], rule_ids: Sequence[str], error: ErrorInfo) -> Record:
    """The call ends `denied` by the policy (or its re-check after approval)."""
    return Record(
        Event.TOOL_DENIED,
        {
            **call,
            Field.STATUS: CallStatus.DENIED.value,
            Field.RULE_IDS: list(rule_ids),
            Field.REASON: error.message,
            Field.ERROR_TYPE: error.type,
        },
    )


def approval_requested(call: Mapping[str, Any]) -> Record:
    """The call waits for a human: it ends `pending_approval` in this process."""
    return Record(
        Event.APPROVAL_REQUESTED, {**call, Field.STATUS: CallStatus.PENDING_APPROVAL.value}
    )


def approval_granted(
    call: Mapping[str, Any],
    approval_id: str,
    arguments: Mapping[str, Any],
    *,
    edited: bool,
) -> Record:
    """A human approved; the call was claimed to run once with `arguments`."""
    return Record(
        Event.APPROVAL_GRANTED,
        {
            **call,
            Field.APPROVAL_ID: approval_id,
            Field.APPROVAL_EDITED: edited,
            Field.ARGUMENTS: dict(arguments),
        },
    )


def approval_closed(
    call: Mapping[str, Any], approval_id: str, error: ErrorInfo, *, expired: bool
) -> Record:
    """A human rejected the call, or no one answered in time: it ends `denied`."""
    return Record(
        Event.APPROVAL_EXPIRED if expired else Event.APPROVAL_REJECTED,
        {
            **call,
            Field.APPROVAL_ID: approval_id,
            Field.STATUS: CallStatus.DENIED.value,
            Field.REASON: error.message,
            Field.ERROR_TYPE: error.type,
        },
    )


def execution_started(call: Mapping[str, Any], sandbox_mode: str) -> Record:
    """The executor was asked to run the call."""
    return Record(Event.EXECUTION_STARTED, {**call, Field.SANDBOX_MODE: sandbox_mode})


# What an executor reports in `ExecutionResult.sandbox`, and where it is recorded.
_SANDBOX_FIELDS = (
    ("container_id", Field.SANDBOX_CONTAINER_ID),
    ("exit_code", Field.EXIT_CODE),
    ("image", Field.SANDBOX_IMAGE),
)


def execution_finished(
    call: Mapping[str, Any], result: ExecutionResult, sandbox_mode: str
) -> Record:
    """The call ran (or its executor failed): its final status, result and sandbox facts."""
    fields = {
        **call,
        Field.STATUS: result.status.value,
        Field.DURATION_MS: round(result.duration_ms, 3),
        Field.SANDBOX_MODE: result.sandbox.get("mode", sandbox_mode),
    }
    for key, name in _SANDBOX_FIELDS:
        if key in result.sandbox:
            fields[name] = result.sandbox[key]
    if result.status is CallStatus.OK:
        fields[Field.RESULT] = result.result
    if result.error is not None:
        fields[Field.ERROR_TYPE] = result.error.type
        fields[Field.ERROR_MESSAGE] = result.error.message
        if result.error.details:
            fields[Field.ERROR_DETAILS] = list(result.error.details)
    if result.stdout:
        fields[Field.STDOUT] = result.stdout
    if result.stderr:
        fields[Field.STDERR] = result.stderr
    return Record(Event.EXECUTION_FINISHED, fields)


# -- the run and the log itself ----------------------------------------------------


def run_started(
    context: CallContext,
    *,
    agent_name: str,
    model_name: str | None,
    prompt: str | None = None,
    resumed: bool = False,
) -> Record:
    """A run started (or resumed); `prompt` only with `audit_conversation`."""
    fields: dict[str, Any] = {
        Field.AGENT_NAME: agent_name,
        Field.CONVERSATION_ID: context.conversation_id,
        Field.REQUEST_MODEL: model_name,
        Field.RUN_ID: context.run_id,
    }
    if context.tenant:
        fields[Field.TENANT] = context.tenant
    if prompt is not None:
        fields[Field.PROMPT] = prompt
    return Record(Event.RUN_RESUMED if resumed else Event.RUN_STARTED, fields)


def run_finished(
    context: CallContext,
    *,
    agent_name: str,
    status: str,
    input_tokens: int,
    output_tokens: int,
    output: str | None = None,
    reasoning: Sequence[str] = (),
) -> Record:
    """A run stopped: the *run's* status (no call record); `output` only with
    `audit_conversation`."""
    fields: dict[str, Any] = {
        Field.AGENT_NAME: agent_name,
        Field.CONVERSATION_ID: context.conversation_id,
        Field.RUN_ID: context.run_id,
        Field.STATUS: status,
        Field.USAGE_INPUT_TOKENS: input_tokens,
        Field.USAGE_OUTPUT_TOKENS: output_tokens,
    }
    if output is not None:
        fields[Field.OUTPUT] = output
        if reasoning:
            fields[Field.REASONING] = list(reasoning)
    return Record(Event.RUN_FINISHED, fields)


def audit_recovered(reason: str, **facts: Any) -> Record:
    """The log repaired itself on open: `torn_tail` (dropped bytes, their SHA-256)
    or `behind_checkpoint` (checkpoint and resumed sequence numbers)."""
    names = {
        "dropped_bytes": Field.RECOVERY_DROPPED_BYTES,
        "dropped_sha256": Field.RECOVERY_DROPPED_SHA256,
        "checkpoint_seq": Field.RECOVERY_CHECKPOINT_SEQ,
        "resumed_seq": Field.RECOVERY_RESUMED_SEQ,
    }
    fields: dict[str, Any] = {Field.RECOVERY_REASON: reason}
    for key, value in facts.items():
        fields[names[key]] = value
    return Record(Event.AUDIT_RECOVERED, fields)
