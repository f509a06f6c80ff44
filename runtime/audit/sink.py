"""The seam the pipeline writes audit records through."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


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


class NullAuditSink:
    """Drops every record: for callers that audit elsewhere, and for unit tests."""

    def write(self, event: str, fields: Mapping[str, Any]) -> None:
        return None

    def close(self) -> None:
        return None
