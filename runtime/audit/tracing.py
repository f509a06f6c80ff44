"""Opt-in OpenTelemetry spans carrying the audit attributes.

When `opentelemetry-api` is importable *and* the host application installed a
tracer provider, each tool call becomes an `execute_tool {name}` span (kind
INTERNAL, as the GenAI semantic conventions say) with the same attribute names
as its audit records. The runtime never installs a provider or an exporter:
without one, or without the package, everything here is a cheap no-op.

Two ways in:

- `TracingSink(inner)` wraps any `AuditSink`: the first record of a call
  (by `gen_ai.tool.call.id`) opens its span, every record adds attributes, and
  the record that ends the call (`runtime.audit.events.is_call_end`) ends it.
- `ToolTracer.span(name, fields)` is a context manager for code that wants to
  bracket a call itself.

Attribute values are redacted exactly as in the log; argument, result and
output *content* is never put on a span (collectors are often less trusted
than the audit log), only its HMAC, size and hash.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from runtime.audit.events import Field, is_call_end
from runtime.audit.records import canonical_json
from runtime.audit.redaction import Redactor
from runtime.audit.sink import AuditSink

try:  # optional dependency
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - exercised where the package is absent
    _trace = None  # type: ignore[assignment]

__all__ = ["ToolSpan", "ToolTracer", "TracingSink", "span_attributes", "tracing_enabled"]

_CONTENT_FIELDS = frozenset(
    {
        Field.ARGUMENTS,
        Field.ARGUMENTS_RAW,
        Field.RESULT,
        Field.STDOUT,
        Field.STDERR,
        Field.ERROR_DETAILS,
    }
)
_TRACER_NAME = "agent-runtime"
_MAX_OPEN_SPANS = 10_000

AttributeValue = str | bool | int | float | tuple[str, ...] | tuple[int, ...] | tuple[float, ...]


def tracing_enabled() -> bool:
    """True when OpenTelemetry is installed and the host configured a provider."""
    if _trace is None:
        return False
    provider = _trace.get_tracer_provider()
    return not isinstance(provider, _trace.ProxyTracerProvider | _trace.NoOpTracerProvider)


def span_attributes(fields: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """Convert redacted audit fields into OpenTelemetry attribute values.

    Content fields are dropped; None is dropped; homogeneous lists of
    primitives become tuples; anything else becomes canonical JSON text.
    """
    out: dict[str, AttributeValue] = {}
    for name, value in fields.items():
        if name in _CONTENT_FIELDS or value is None:
            continue
        if isinstance(value, str | bool | int | float):
            out[name] = value
        elif isinstance(value, list) and value and _homogeneous(value):
            out[name] = tuple(value)
        else:
            out[name] = canonical_json(value).decode("utf-8")
    return out


def _homogeneous(values: list[Any]) -> bool:
    kind = type(values[0])
    return kind in (str, int, float) and all(type(v) is kind for v in values)


class ToolSpan:
    """A live span (or a no-op stand-in) for one tool call."""

    def __init__(self, span: Any, redactor: Redactor) -> None:
        self._span = span
        self._redactor = redactor

    @property
    def recording(self) -> bool:
        return self._span is not None

    def set_fields(self, fields: Mapping[str, Any]) -> None:
        """Add audit fields (raw: they are redacted here) as attributes."""
        if self._span is None:
            return
        redacted = self._redactor.redact_fields(fields)
        self._span.set_attributes(span_attributes(redacted))
        error_type = redacted.get(Field.ERROR_TYPE)
        if error_type and _trace is not None:
            message = redacted.get(Field.ERROR_MESSAGE) or redacted.get(Field.REASON)
            self._span.set_status(
                _trace.Status(_trace.StatusCode.ERROR, str(message or error_type))
            )

    def end(self) -> None:
        if self._span is not None:
            self._span.end()
            self._span = None


class ToolTracer:
    """Starts `execute_tool {name}` spans when the host has tracing configured.

    Args:
        redactor: Redacts attribute values; default: secret patterns and key
            names only (give the sink's redactor to honour policy paths).
        tracer_provider: Use this provider instead of the global one (as
            OpenTelemetry instrumentations accept); giving one turns tracing on.
    """

    def __init__(self, redactor: Redactor | None = None, tracer_provider: Any = None) -> None:
        self._redactor = redactor or Redactor()
        self._provider = tracer_provider

    @property
    def enabled(self) -> bool:
        return _trace is not None and (self._provider is not None or tracing_enabled())

    def start(self, tool_name: str, fields: Mapping[str, Any] | None = None) -> ToolSpan:
        """Start a span in the current context (a no-op span when tracing is off)."""
        if not self.enabled:
            return ToolSpan(None, self._redactor)
        assert _trace is not None
        tracer = _trace.get_tracer(_TRACER_NAME, tracer_provider=self._provider)
        span = tracer.start_span(f"execute_tool {tool_name}", kind=_trace.SpanKind.INTERNAL)
        handle = ToolSpan(span, self._redactor)
        handle.set_fields({Field.OPERATION_NAME: "execute_tool", Field.TOOL_NAME: tool_name})
        if fields:
            handle.set_fields(fields)
        return handle

    @contextlib.contextmanager
    def span(self, tool_name: str, fields: Mapping[str, Any] | None = None) -> Iterator[ToolSpan]:
        """Bracket one tool call; ends the span however the block exits."""
        handle = self.start(tool_name, fields)
        try:
            yield handle
        finally:
            handle.end()


class TracingSink:
    """Wraps an `AuditSink`, mirroring each call's records as one span.

    Args:
        inner: The sink that keeps the audit log.
        redactor: Redacts span attributes; default: the inner sink's.
        tracer_provider: As for `ToolTracer`.

    The inner sink is written first: if it fails, the error propagates (fail
    closed) and no span attribute is set for a record that was not audited.
    """

    def __init__(
        self, inner: AuditSink, *, redactor: Redactor | None = None, tracer_provider: Any = None
    ) -> None:
        self._inner = inner
        # Reuse the inner sink's redactor (policy paths, HMAC key) when it has one.
        inner_redactor = getattr(inner, "redactor", None)
        if redactor is None and isinstance(inner_redactor, Redactor):
            redactor = inner_redactor
        self._inherits_redactor = redactor is inner_redactor
        self._tracer = ToolTracer(redactor, tracer_provider)
        self._tracer_provider = tracer_provider
        self._open: dict[str, ToolSpan] = {}
        self._lock = threading.Lock()

    def write(self, event: str, fields: Mapping[str, Any]) -> None:
        self._inner.write(event, fields)
        call_id = fields.get(Field.TOOL_CALL_ID)
        tool = fields.get(Field.TOOL_NAME)
        if call_id is None or tool is None or not self._tracer.enabled:
            return
        key = str(call_id)
        with self._lock:
            span = self._open.get(key)
            if span is None:
                if len(self._open) >= _MAX_OPEN_SPANS:  # calls that never finished
                    self._open.pop(next(iter(self._open))).end()
                span = self._open[key] = self._tracer.start(str(tool))
            if is_call_end(event, fields):
                del self._open[key]
            else:
                span.set_fields(fields)
                return
        span.set_fields(fields)
        span.end()

    def add_redact_paths(self, redact_paths: Iterable[str]) -> None:
        """Pass a policy's redaction paths to the inner sink (and to spans sharing its redactor)."""
        add = getattr(self._inner, "add_redact_paths", None)
        if add is None:
            return
        add(redact_paths)
        inner_redactor = getattr(self._inner, "redactor", None)
        if self._inherits_redactor and isinstance(inner_redactor, Redactor):
            self._tracer = ToolTracer(inner_redactor, self._tracer_provider)

    def close(self) -> None:
        with self._lock:
            spans, self._open = list(self._open.values()), {}
        for span in spans:
            span.end()
        self._inner.close()
