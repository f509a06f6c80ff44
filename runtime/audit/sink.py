"""The seam the pipeline writes audit records through."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable


class AuditWriteError(RuntimeError):
    """The audit log cannot be written; tool execution must stop (fail closed)."""


class AuditSink(Protocol):
    """Receives one record per step of a call.

    `event` names the step and `fields` holds the record's keys, both from
    `runtime.audit.events` (`Event`, `Field`): OpenTelemetry GenAI names where
    they exist (`gen_ai.tool.name`, ...) and `agentrt.*` otherwise. Every call
    ends in one record carrying `agentrt.status`. Raw arguments arrive under
    `agentrt.tool.arguments` and a raw result under `agentrt.tool.result`: the
    sink redacts, hashes or drops them; it must never store them verbatim
    unless configured to.

    Raises:
        AuditWriteError: The record could not be appended.
    """

    def write(self, event: str, fields: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class RedactingSink(Protocol):
    """A sink that redacts argument paths a policy names (`audit: {redact: [...]}`).

    The pipeline hands it its policy's paths when it is built, so a library
    user who passes a policy and a sink never stores those values in clear.
    """

    def add_redact_paths(self, redact_paths: Iterable[str]) -> None: ...


def wire_policy_redaction(audit: AuditSink, policy: object) -> None:
    """Give `audit` the redaction paths `policy` declares, when both support it."""
    paths = tuple(getattr(policy, "redact_paths", ()) or ())
    if paths and isinstance(audit, RedactingSink):
        audit.add_redact_paths(paths)


class NullAuditSink:
    """Drops every record: for callers that audit elsewhere, and for unit tests."""

    def write(self, event: str, fields: Mapping[str, Any]) -> None:
        return None

    def close(self) -> None:
        return None
