"""The audit stage: one hash-chained record per step of every call.

Imported lazily so `import runtime` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "AuditSink": "runtime.audit.sink",
    "AuditWriteError": "runtime.audit.sink",
    "NullAuditSink": "runtime.audit.sink",
    "HashChainSink": "runtime.audit.chain",
    "AuditLogLockedError": "runtime.audit.chain",
    "audit_context": "runtime.audit.chain",
    "default_audit_log_path": "runtime.audit.chain",
    "verify": "runtime.audit.verify",
    "VerifyReport": "runtime.audit.verify",
    "Redactor": "runtime.audit.redaction",
    "arguments_hmac": "runtime.audit.redaction",
    "TracingSink": "runtime.audit.tracing",
    "Event": "runtime.audit.events",
    "Field": "runtime.audit.events",
    "CALL_END_EVENTS": "runtime.audit.events",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runtime.audit' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
