"""Opt-in OpenTelemetry spans: off by default, same attributes, no content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime.audit import tracing
from runtime.audit.chain import HashChainSink
from runtime.audit.sink import NullAuditSink
from runtime.audit.tracing import ToolTracer, TracingSink, span_attributes

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
    base = {"gen_ai.tool.name": "search", "gen_ai.tool.call.id": "call_1"}
    sink.write("tool.proposed", {**base, "agentrt.tool.arguments": {"q": SECRET}})
    sink.write("policy.decided", {**base, "agentrt.decision": "allow", "agentrt.rule_ids": ["r1"]})
    assert spans.get_finished_spans() == ()
    sink.write(
        "execution.finished",
        {**base, "agentrt.status": "ok", "agentrt.duration_ms": 3.5, "agentrt.tool.result": "42"},
    )
    sink.close()
    (span,) = spans.get_finished_spans()
    assert span.name == "execute_tool search"
    attributes = dict(span.attributes)
    assert attributes["gen_ai.operation.name"] == "execute_tool"
    assert attributes["agentrt.rule_ids"] == ("r1",)
    assert attributes["agentrt.status"] == "ok"
    assert "agentrt.tool.arguments" not in attributes and "agentrt.tool.result" not in attributes
    assert len(attributes["agentrt.tool.arguments_hmac"]) == 64
    assert attributes["agentrt.tool.result_bytes"] == 2
    assert SECRET not in repr(attributes)


def test_error_sets_span_status(exporter: tuple[Any, Any]) -> None:
    provider, spans = exporter
    with ToolTracer(tracer_provider=provider).span("run_sql") as handle:
        handle.set_fields(
            {"error.type": "timeout", "agentrt.error.message": f"gave up; key {SECRET}"}
        )
    (span,) = spans.get_finished_spans()
    assert span.status.status_code.name == "ERROR"
    assert SECRET not in (span.status.description or "")


def test_unfinished_calls_are_ended_on_close(exporter: tuple[Any, Any]) -> None:
    provider, spans = exporter
    sink = TracingSink(NullAuditSink(), tracer_provider=provider)
    sink.write("tool.proposed", {"gen_ai.tool.name": "a", "gen_ai.tool.call.id": "1"})
    sink.close()
    assert [s.name for s in spans.get_finished_spans()] == ["execute_tool a"]


def test_span_attributes_conversion() -> None:
    assert span_attributes(
        {"a": None, "b": [1, 2], "c": [1, "x"], "d": {"k": 1}, "agentrt.tool.stdout": "x"}
    ) == {"b": (1, 2), "c": '[1,"x"]', "d": '{"k":1}'}
