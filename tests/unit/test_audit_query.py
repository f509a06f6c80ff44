"""Streaming queries and statistics."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from runtime.audit.chain import HashChainSink
from runtime.audit.events import Event, Field
from runtime.audit.query import RecordFilter, compute_stats, iter_records, parse_time

KEY = "query-test-key"


def call(tool: str, status: str, ms: float, **extra: Any) -> dict[str, Any]:
    return {
        Field.TOOL_NAME: tool,
        Field.STATUS: status,
        Field.DURATION_MS: ms,
        Field.TENANT: extra.pop("tenant", "acme"),
        Field.CONVERSATION_ID: extra.pop("conversation", "c1"),
        **extra,
    }


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    with HashChainSink(path, hmac_key=KEY, max_bytes=1_500) as sink:  # several segments
        sink.write(Event.TOOL_PROPOSED, {Field.TOOL_NAME: "search"})
        for ms in range(1, 21):
            sink.write(Event.EXECUTION_FINISHED, call("search", "ok", float(ms)))
        sink.write(
            Event.POLICY_DECIDED,
            {
                Field.TOOL_NAME: "send_email",
                Field.DECISION: "deny",
                Field.RULE_IDS: ["deny-external"],
            },
        )
        sink.write(
            Event.TOOL_DENIED,
            call(
                "send_email", "denied", 0.5, tenant="globex", **{Field.RULE_IDS: ["deny-external"]}
            ),
        )
        sink.write(
            Event.POLICY_DECIDED,
            {Field.DECISION: "deny", Field.REASON: "rate limit exceeded"},
        )
        sink.write(
            Event.TOOL_DENIED,
            call("send_email", "denied", 0.25, **{Field.REASON: "rate limit exceeded"}),
        )
        sink.write(Event.EXECUTION_FINISHED, call("run_sql", "tool_error", 7.0, conversation="c2"))
        sink.write(Event.RUN_FINISHED, {Field.RUN_ID: "r1", Field.STATUS: "completed"})
    return path


def tools(path: Path, record_filter: RecordFilter) -> list[tuple[str, str | None]]:
    return [
        (r["event"], r["fields"].get(Field.TOOL_NAME))
        for _, r in iter_records([path], record_filter)
    ]


def test_filters_by_field(log: Path) -> None:
    assert len(tools(log, RecordFilter(tool="search"))) == 21
    assert tools(log, RecordFilter(status="denied")) == [("tool.denied", "send_email")] * 2
    assert len(tools(log, RecordFilter(decision="deny"))) == 2
    assert tools(log, RecordFilter(tenant="globex")) == [("tool.denied", "send_email")]
    assert tools(log, RecordFilter(conversation="c2")) == [("execution.finished", "run_sql")]
    assert tools(log, RecordFilter(tool="search", event="tool.proposed")) == [
        ("tool.proposed", "search")
    ]
    assert tools(log, RecordFilter(tool="nope")) == []


def test_a_value_only_inside_arguments_does_not_match(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with HashChainSink(path, hmac_key=KEY) as sink:
        sink.write(
            Event.TOOL_PROPOSED,
            {Field.TOOL_NAME: "x", Field.ARGUMENTS: {Field.TOOL_NAME: "search"}},
        )
    assert tools(path, RecordFilter(tool="search")) == []  # the byte prefilter is confirmed


def test_since_and_until(log: Path) -> None:
    everything = [r for _, r in iter_records([log])]
    middle = everything[10]["ts"]
    after = [r["seq"] for _, r in iter_records([log], RecordFilter(since=middle))]
    before = [r["seq"] for _, r in iter_records([log], RecordFilter(until=middle))]
    assert after[0] == 11 and before[-1] == 10
    assert sorted(after + before) == [r["seq"] for r in everything]
    future = parse_time("2999-01-01")
    assert list(iter_records([log], RecordFilter(since=future))) == []


def test_parse_time_formats() -> None:
    now = dt.datetime(2025, 1, 31, 12, 0, tzinfo=dt.UTC)
    assert parse_time("15m", now=now) == "2025-01-31T11:45:00.000000Z"
    assert parse_time("2d", now=now) == "2025-01-29T12:00:00.000000Z"
    assert parse_time("2025-01-31") == "2025-01-31T00:00:00.000000Z"
    assert parse_time("2025-01-31T13:00:00+01:00") == "2025-01-31T12:00:00.000000Z"
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time("yesterday")


def test_stats(log: Path) -> None:
    stats = compute_stats([log])
    assert stats.records == 27
    assert stats.calls == 23  # the run's record and the decisions are no calls
    assert stats.by_tool == {
        "run_sql": {"tool_error": 1},
        "search": {"ok": 20},
        "send_email": {"denied": 2},
    }
    assert stats.by_status == {"ok": 20, "denied": 2, "tool_error": 1}
    assert stats.denials == 2
    assert stats.denial_reasons == {"deny-external": 1, "rate limit exceeded": 1}
    assert (stats.runs, stats.by_run_status) == (1, {"completed": 1})
    search = stats.durations_ms["search"]
    assert (search.count, search.p50, search.p95) == (20, 10.0, 19.0)
    assert stats.durations_ms["*"].count == 23
    assert stats.first_ts is not None and stats.last_ts is not None


def test_stats_honour_filters_and_skip_torn_lines(log: Path) -> None:
    with open(log, "ab") as handle:
        handle.write(b'{"event":"execution.finished","fiel')
    stats = compute_stats([log], RecordFilter(tenant="globex"))
    assert stats.calls == 1 and stats.by_status == {"denied": 1}
