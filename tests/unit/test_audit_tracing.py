"""Opt-in OpenTelemetry spans: off by default, same attributes, no content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime import CallContext, ToolCallRequest, ToolRegistry, tool
from runtime.audit import tracing
from runtime.audit.chain import HashChainSink
from runtime.audit.events import Event, Field
from runtime.audit.sink import NullAuditSink
from runtime.audit.tracing import ToolTracer, TracingSink, span_attributes
from runtime.pipeline import ToolCallPipeline
from runtime.policy.engine import PolicySet
from runtime.policy.ratelimit import InMemoryRateLimitStore
from runtime.sandbox.executor import InProcessExecutor

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
sdk_export = pytest.importorskip("opentelemetry.sdk.trace.export")
in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")

SECRET = "sk-" + "live0123456789abcdefghij"


@pytest.fixture
def exporter() -> tuple[Any, Any]:
    spans = in_memory.InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(sdk_export.SimpleSpanProcessor(spans))
    return provider, spans


def test_no_global_provider_means_no_spans() -> None:
    # The runtime never installs a provider: the global one stays the proxy.
    assert not tracing.tracing_enabled()
    handle = ToolTracer().start("search")
    assert not handle.recording
    handle.set_fields({"x": 1})
    handle.end()


def test_tracing_sink_turns_a_call_into_one_span(exporter: tuple[Any, Any], tmp_path: Path) -> None:
    provider, spans = exporter
    inner = HashChainSink(tmp_path / "audit.jsonl", hmac_key="k")
    sink = TracingSink(inner, tracer_provider=provider)
    base = {Field.TOOL_NAME: "search", Field.TOOL_CALL_ID: "call_1"}
    sink.write(Event.TOOL_PROPOSED, {**base, Field.ARGUMENTS: {"q": SECRET}})
    sink.write(Event.POLICY_DECIDED, {**base, Field.DECISION: "allow", Field.RULE_IDS: ["r1"]})
    assert spans.get_finished_spans() == ()
    sink.write(
        Event.EXECUTION_FINISHED,
        {**base, Field.STATUS: "ok", Field.DURATION_MS: 3.5, Field.RESULT: "42"},
    )
    sink.close()
    (span,) = spans.get_finished_spans()
    assert span.name == "execute_tool search"
    attributes = dict(span.attributes)
    assert attributes[Field.OPERATION_NAME] == "execute_tool"
    assert attributes[Field.RULE_IDS] == ("r1",)
    assert attributes[Field.STATUS] == "ok"
    assert Field.ARGUMENTS not in attributes and Field.RESULT not in attributes
    assert len(attributes[Field.ARGUMENTS_HMAC]) == 64
    assert attributes["agentrt.tool.result_bytes"] == 2
    assert SECRET not in repr(attributes)


def test_error_sets_span_status(exporter: tuple[Any, Any]) -> None:
    provider, spans = exporter
    with ToolTracer(tracer_provider=provider).span("run_sql") as handle:
        handle.set_fields(
            {Field.ERROR_TYPE: "timeout", Field.ERROR_MESSAGE: f"gave up; key {SECRET}"}
        )
    (span,) = spans.get_finished_spans()
    assert span.status.status_code.name == "ERROR"
    assert SECRET not in (span.status.description or "")


@tool
def echo(text: str) -> str:
    """Return the text."""
    return text


async def test_a_denied_call_ends_its_span(exporter: tuple[Any, Any]) -> None:
    provider, spans = exporter
    sink = TracingSink(NullAuditSink(), tracer_provider=provider)
    no_rules = PolicySet([], rate_limits=InMemoryRateLimitStore())
    pipeline = ToolCallPipeline(
        ToolRegistry([echo]), InProcessExecutor(), policy=no_rules, audit=sink
    )
    request = ToolCallRequest("call_1", "echo", '{"text": "hi"}')
    await pipeline.process(request, CallContext(tenant="acme"))
    (span,) = spans.get_finished_spans()  # ended by its `tool.denied` record, not by close()
    assert dict(span.attributes or {})[Field.STATUS] == "denied"
    assert span.status.status_code.name == "ERROR"
    assert "default deny" in (span.status.description or "")


def test_unfinished_calls_are_ended_on_close(exporter: tuple[Any, Any]) -> None:
    provider, spans = exporter
    sink = TracingSink(NullAuditSink(), tracer_provider=provider)
    sink.write(Event.TOOL_PROPOSED, {Field.TOOL_NAME: "a", Field.TOOL_CALL_ID: "1"})
    sink.close()
    assert [s.name for s in spans.get_finished_spans()] == ["execute_tool a"]


def test_span_attributes_conversion() -> None:
    assert span_attributes(
        {"a": None, "b": [1, 2], "c": [1, "x"], "d": {"k": 1}, Field.STDOUT: "x"}
    ) == {"b": (1, 2), "c": '[1,"x"]', "d": '{"k":1}'}
