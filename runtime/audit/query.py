"""Streaming queries and statistics over audit logs.

Records are read one line at a time across a log's rotated segments, so a
query's memory does not grow with the log. Filters first test the raw line
for the exact canonical bytes they need (`"gen_ai.tool.name":"search"`, the
fixed-position timestamp) and parse only lines that may match.

Statistics count one *call* per record that ends a call (one of
`CALL_END_EVENTS`, each carrying `agentrt.status`), and one *denial* per such
record whose status is `denied`, so `calls`, `by_status` and `denials` agree
with `query --status`. A denial's reason is `agentrt.reason` (the policy's
sentence, or a human's note), else its rule ids, else `agentrt.error.message`.
`run.finished` records carry the run's status and are counted as `runs`.
"""

from __future__ import annotations

import array
import datetime as dt
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import pydantic

from runtime.audit.events import Event, Field, is_call_end
from runtime.audit.records import discover_logs
from runtime.calls import CallStatus
from runtime.stats import percentile

__all__ = [
    "AuditStats",
    "DurationStats",
    "RecordFilter",
    "compute_stats",
    "iter_lines",
    "iter_records",
    "parse_time",
]

_READ_BUFFER = 1 << 20
# From the end of a record line: `"ts":"<27 chars>"` `,"hash":"<64>"}` `\n`.
_TS_END = 1 + 2 + 64 + 9 + 1
_TS_KEY = b',"ts":"'
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, *, now: dt.datetime | None = None) -> str:
    """Turn `--since`/`--until` text into the log's timestamp format.

    Accepts ISO 8601 dates and datetimes (naive ones are UTC) and relative
    ages such as `90s`, `15m`, `2h`, `7d`, `1w` (that long before now).

    Raises:
        ValueError: The text is neither.
    """
    text = text.strip()
    moment: dt.datetime
    relative = _RELATIVE.match(text)
    if relative:
        seconds = float(relative[1]) * _UNITS[relative[2]]
        moment = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=seconds)
    else:
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"cannot read time {text!r}: use ISO 8601 (2025-01-31T12:00:00Z) "
                "or an age such as 15m, 2h, 7d"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class RecordFilter(pydantic.BaseModel):
    """Which records a query keeps; unset criteria match everything.

    Attributes:
        tool: `gen_ai.tool.name`.
        status: `agentrt.status` (e.g. `ok`, `denied`).
        decision: `agentrt.decision` (`allow`, `deny`, `require_approval`).
        tenant: `agentrt.tenant`.
        conversation: `gen_ai.conversation.id`.
        event: The record's step name (e.g. `policy.decided`).
        since: Keep records at or after this time (log timestamp format).
        until: Keep records before this time.
    """

    model_config = pydantic.ConfigDict(frozen=True)

    tool: str | None = None
    status: str | None = None
    decision: str | None = None
    tenant: str | None = None
    conversation: str | None = None
    event: str | None = None
    since: str | None = None
    until: str | None = None

    def _field_criteria(self) -> list[tuple[str, str]]:
        pairs = (
            (Field.TOOL_NAME, self.tool),
            (Field.STATUS, self.status),
            (Field.DECISION, self.decision),
            (Field.TENANT, self.tenant),
            (Field.CONVERSATION_ID, self.conversation),
        )
        return [(name, value) for name, value in pairs if value is not None]

    def compile(self) -> _CompiledFilter:
        return _CompiledFilter(self)


class _CompiledFilter:
    """A `RecordFilter` prepared for the per-line hot path."""

    def __init__(self, spec: RecordFilter) -> None:
        self.criteria = spec._field_criteria()
        self.event = spec.event
        # Canonical JSON writes each field exactly as `"name":"value"`: a line
        # without those bytes cannot match, and needs no parsing.
        self.needles = [
            json.dumps(name, ensure_ascii=False).encode() + b":" + _json_text(value)
            for name, value in self.criteria
        ]
        if spec.event is not None:
            self.needles.append(b'{"event":' + _json_text(spec.event) + b",")
        self.since = spec.since.encode("ascii") if spec.since else None
        self.until = spec.until.encode("ascii") if spec.until else None

    def line_may_match(self, line: bytes) -> bool:
        if self.since is not None or self.until is not None:
            end = len(line) - _TS_END
            if line[end - 34 : end - 27] == _TS_KEY:
                ts = line[end - 27 : end]
                if self.since is not None and ts < self.since:
                    return False
                if self.until is not None and ts >= self.until:
                    return False
        return all(needle in line for needle in self.needles)

    def record_matches(self, record: dict[str, Any]) -> bool:
        fields = record.get("fields")
        if not isinstance(fields, dict):
            return False
        for name, value in self.criteria:
            if fields.get(name) != value:
                return False
        if self.event is not None and record.get("event") != self.event:
            return False
        ts = record.get("ts", "")
        if self.since is not None and str(ts).encode("ascii", "replace") < self.since:
            return False
        return not (self.until is not None and str(ts).encode("ascii", "replace") >= self.until)


def _json_text(value: str) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def iter_lines(paths: Iterable[str | os.PathLike[str]]) -> Iterator[bytes]:
    """Every complete record line of the given logs, in chain order.

    A final line without a newline (torn by a crash) is skipped.

    Raises:
        FileNotFoundError: A given path does not exist.
    """
    logs = discover_logs(paths)
    for log in logs:
        for path in log.files:
            if not path.exists():
                raise FileNotFoundError(f"no such audit log: {path}")
    for log in logs:
        for path in log.files:
            with open(path, "rb", buffering=_READ_BUFFER) as handle:
                for line in handle:
                    if line[-1:] == b"\n":
                        yield line


def iter_records(
    paths: Iterable[str | os.PathLike[str]], record_filter: RecordFilter | None = None
) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """Stream `(raw line, parsed record)` pairs that match `record_filter`.

    Lines that are not JSON objects are skipped: `verify` is the tool that
    reports them.
    """
    compiled = (record_filter or RecordFilter()).compile()
    loads = json.loads
    for line in iter_lines(paths):
        if not compiled.line_may_match(line):
            continue
        try:
            record = loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and compiled.record_matches(record):
            yield line, record


class DurationStats(pydantic.BaseModel):
    """Call durations (ms) of one tool, or of all calls."""

    count: int
    p50: float | None
    p95: float | None


class AuditStats(pydantic.BaseModel):
    """What `agentrt audit stats` reports.

    Attributes:
        records: Records that passed the filter.
        calls: Records that end a call (one per call, two for a call that
            waited for approval: `pending_approval`, then its final status).
        by_tool: Calls per tool, then per status.
        by_status: Calls per status.
        denials: Calls that ended `denied` (by policy, limit or a human).
        denial_reasons: Denials per reason, most frequent first.
        runs: `run.finished` records.
        by_run_status: Runs per status.
        durations_ms: Per tool, and `*` for all calls.
        first_ts: Timestamp of the first record counted.
        last_ts: ... and of the last.
    """

    records: int = 0
    calls: int = 0
    by_tool: dict[str, dict[str, int]] = pydantic.Field(default_factory=dict)
    by_status: dict[str, int] = pydantic.Field(default_factory=dict)
    denials: int = 0
    denial_reasons: dict[str, int] = pydantic.Field(default_factory=dict)
    runs: int = 0
    by_run_status: dict[str, int] = pydantic.Field(default_factory=dict)
    durations_ms: dict[str, DurationStats] = pydantic.Field(default_factory=dict)
    first_ts: str | None = None
    last_ts: str | None = None


def _durations(values: array.array[float]) -> DurationStats:
    if not values:
        return DurationStats(count=0, p50=None, p95=None)
    ordered = sorted(values)  # once: sorting it again in percentile() is one linear pass
    return DurationStats(
        count=len(ordered), p50=percentile(ordered, 0.5), p95=percentile(ordered, 0.95)
    )


def _denial_reason(fields: dict[str, Any]) -> str:
    reason = fields.get(Field.REASON)
    if reason:
        return str(reason)
    rules = fields.get(Field.RULE_IDS)
    if isinstance(rules, list) and rules:
        return ", ".join(str(rule) for rule in rules)
    message = fields.get(Field.ERROR_MESSAGE)
    return str(message) if message else "(no reason recorded)"


def compute_stats(
    paths: Iterable[str | os.PathLike[str]], record_filter: RecordFilter | None = None
) -> AuditStats:
    """Count calls per tool and status, denial reasons, and p50/p95 durations.

    Memory holds one float per timed call (8 bytes), not the records.
    """
    stats = AuditStats()
    by_tool: dict[str, Counter[str]] = {}
    by_status: Counter[str] = Counter()
    by_run_status: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    durations: dict[str, array.array[float]] = {"*": array.array("d")}
    for _line, record in iter_records(paths, record_filter):
        fields = record["fields"]
        stats.records += 1
        if stats.first_ts is None:
            stats.first_ts = record.get("ts")
        stats.last_ts = record.get("ts")
        event = record.get("event")
        if event == Event.RUN_FINISHED:
            stats.runs += 1
            by_run_status[str(fields.get(Field.STATUS))] += 1
            continue
        if not is_call_end(str(event), fields):
            continue
        status = str(fields[Field.STATUS])
        tool = str(fields.get(Field.TOOL_NAME) or "(unknown)")
        stats.calls += 1
        by_status[status] += 1
        by_tool.setdefault(tool, Counter())[status] += 1
        if status == CallStatus.DENIED:
            stats.denials += 1
            reasons[_denial_reason(fields)] += 1
        duration = fields.get(Field.DURATION_MS)
        if isinstance(duration, int | float) and not isinstance(duration, bool):
            durations["*"].append(float(duration))
            durations.setdefault(tool, array.array("d")).append(float(duration))
    stats.by_tool = {tool: dict(counts.most_common()) for tool, counts in sorted(by_tool.items())}
    stats.by_status = dict(by_status.most_common())
    stats.by_run_status = dict(by_run_status.most_common())
    stats.denial_reasons = dict(reasons.most_common())
    stats.durations_ms = {
        name: _durations(values) for name, values in sorted(durations.items()) if values
    }
    return stats
