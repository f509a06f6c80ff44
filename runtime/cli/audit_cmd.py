"""`agentrt audit verify|query|stats`: check and read tamper-evident audit logs.

Exit codes: `verify` returns 0 for an intact log (notices such as a torn
final line from a crash are printed as warnings and do not fail it), 1 when
tampering or corruption was found (the first bad record is named), 2 when the
log or key cannot be read. `query` and `stats` return 0, or 2 on unreadable
input or a bad argument.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.audit.query import AuditStats, RecordFilter
    from runtime.audit.verify import VerifyReport

_TABLE_LIMIT = 200


def register(subparsers: Any) -> None:
    """Add `audit` and its sub-commands to the `agentrt` parser."""
    parser = subparsers.add_parser(
        "audit",
        help="verify, query and summarise audit logs",
        description="Verify, query and summarise tamper-evident audit logs. PATH names the "
        "active log (e.g. .agentrt/audit/audit.jsonl); its rotated segments PATH.000001... "
        "and checkpoint file PATH.checkpoints are found next to it.",
    )
    commands = parser.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)

    verify = commands.add_parser(
        "verify",
        help="check the hash chain and signed checkpoints",
        description="Exit 0: intact (warnings, e.g. a torn final line after a crash, are "
        "printed). Exit 1: tampering or corruption; the first bad record is named. "
        "Exit 2: unreadable log or key.",
    )
    verify.add_argument("paths", nargs="+", metavar="PATH")
    verify.add_argument(
        "--key-file",
        type=Path,
        help="file holding the audit HMAC key (default: $AGENTRT_AUDIT_HMAC_KEY, else PATH.key)",
    )
    verify.add_argument(
        "--strict", action="store_true", help="also check every line is canonical JSON (slower)"
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(handler=_verify)

    query = commands.add_parser("query", help="list records matching filters")
    query.add_argument("paths", nargs="+", metavar="PATH")
    _add_filters(query)
    query.add_argument("--json", action="store_true", help="print matching records as JSON lines")
    query.add_argument(
        "--limit",
        type=int,
        default=None,
        help=f"print at most N records (default: all with --json, {_TABLE_LIMIT} in the table)",
    )
    query.set_defaults(handler=_query)

    stats = commands.add_parser(
        "stats", help="calls per tool and status, denial reasons, p50/p95 durations"
    )
    stats.add_argument("paths", nargs="+", metavar="PATH")
    _add_filters(stats)
    stats.add_argument("--json", action="store_true", help="print the statistics as JSON")
    stats.set_defaults(handler=_stats)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    from runtime.audit.events import Field

    parser.add_argument("--tool", help=Field.TOOL_NAME)
    parser.add_argument(
        "--status",
        help=f"{Field.STATUS}: how a call ended (ok, denied, pending_approval, invalid_arguments, "
        "unknown_tool, tool_error, timeout, ...) or a run ended (completed, ...)",
    )
    parser.add_argument("--decision", help=f"{Field.DECISION}: allow, deny, require_approval")
    parser.add_argument("--tenant", help=Field.TENANT)
    parser.add_argument("--conversation", help=Field.CONVERSATION_ID)
    parser.add_argument("--event", help="record step, e.g. policy.decided")
    parser.add_argument("--since", help="ISO time or age (15m, 2h, 7d): records at or after")
    parser.add_argument("--until", help="ISO time or age: records before")


def _record_filter(args: argparse.Namespace) -> RecordFilter:
    from runtime.audit.query import RecordFilter, parse_time

    return RecordFilter(
        tool=args.tool,
        status=args.status,
        decision=args.decision,
        tenant=args.tenant,
        conversation=args.conversation,
        event=args.event,
        since=parse_time(args.since) if args.since else None,
        until=parse_time(args.until) if args.until else None,
    )


def _fail(message: str) -> int:
    print(f"agentrt audit: {message}", file=sys.stderr)
    return 2


# -- verify -------------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    from runtime.audit.records import HmacKeyError
    from runtime.audit.verify import verify

    key: bytes | None = None
    try:
        if args.key_file is not None:
            key = args.key_file.read_bytes().strip()
            if not key:
                return _fail(f"key file {args.key_file} is empty")
        report = verify(args.paths, key=key, strict=args.strict)
    except (OSError, HmacKeyError) as exc:
        return _fail(str(exc))
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        _print_verify(report)
    return 0 if report.ok else 1


def _where(finding: Any) -> str:
    parts = []
    if finding.path:
        parts.append(f"{finding.path}:{finding.line}" if finding.line else str(finding.path))
    if finding.seq is not None:
        parts.append(f"seq={finding.seq}")
    return f" ({', '.join(parts)})" if parts else ""


def _print_verify(report: VerifyReport) -> None:
    for notice in report.notices:
        print(f"warning: {notice.kind}: {notice.message}{_where(notice)}", file=sys.stderr)
    span = f"seq {report.first_seq}..{report.last_seq}" if report.records else "no records"
    checked = "verified" if report.checkpoints_authenticated else "read (signatures NOT checked)"
    summary = (
        f"{report.records} records ({span}) in {len(report.files)} file(s), "
        f"{report.checkpoints} checkpoint(s) {checked}, {report.records_per_s:,.0f} records/s"
    )
    if report.ok:
        print(f"OK: {summary}")
        return
    first = report.problems[0]
    print(f"TAMPERED: {first.kind}: {first.message}{_where(first)}")
    for problem in report.problems[1:10]:
        print(f"  also: {problem.kind}: {problem.message}{_where(problem)}")
    if len(report.problems) > 10:
        print(f"  ... and {len(report.problems) - 10} more problems (use --json)")
    print(summary)


# -- query --------------------------------------------------------------------


def _query(args: argparse.Namespace) -> int:
    from runtime.audit.query import iter_records

    try:
        record_filter = _record_filter(args)
        records = iter_records(args.paths, record_filter)
        if args.json:
            out = sys.stdout.buffer
            for shown, (line, _record) in enumerate(records):
                if args.limit is not None and shown >= args.limit:
                    break
                out.write(line)
            out.flush()
            return 0
        return _print_table(records, args.limit if args.limit is not None else _TABLE_LIMIT)
    except ValueError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(str(exc))


def _print_table(records: Any, limit: int) -> int:
    from rich.console import Console
    from rich.table import Table

    from runtime.audit.events import Field

    table = Table(show_lines=False, header_style="bold")
    table.add_column("seq", justify="right", no_wrap=True)
    table.add_column("time (UTC)", no_wrap=True)
    for column in ("event", "tool", "status", "decision", "ms", "tenant"):
        table.add_column(column, overflow="fold")
    table.add_column("call id", overflow="fold")
    shown = more = 0
    for _line, record in records:
        if shown >= limit:
            more += 1  # keep counting, not keeping: the table holds `limit` rows at most
            continue
        fields = record["fields"]
        duration = fields.get(Field.DURATION_MS)
        table.add_row(
            str(record.get("seq", "")),
            str(record.get("ts", ""))[:19].replace("T", " "),
            str(record.get("event", "")),
            _cell(fields.get(Field.TOOL_NAME)),
            _cell(fields.get(Field.STATUS)),
            _cell(fields.get(Field.DECISION)),
            f"{duration:.1f}" if isinstance(duration, int | float) else "",
            _cell(fields.get(Field.TENANT)),
            _cell(fields.get(Field.TOOL_CALL_ID)),
        )
        shown += 1
    console = Console()
    console.print(table)
    summary = f"{shown} record(s)"
    if more:
        summary += f"; {more} more not shown (raise --limit, or use --json)"
    console.print(summary)
    return 0


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


# -- stats --------------------------------------------------------------------


def _stats(args: argparse.Namespace) -> int:
    from runtime.audit.query import compute_stats

    try:
        stats = compute_stats(args.paths, _record_filter(args))
    except ValueError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(str(exc))
    if args.json:
        print(stats.model_dump_json(indent=2))
    else:
        _print_stats(stats)
    return 0


def _print_stats(stats: AuditStats) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"{stats.records} records, {stats.calls} calls, {stats.denials} denials, "
        f"{stats.runs} runs" + (f" ({stats.first_ts} .. {stats.last_ts})" if stats.first_ts else "")
    )
    statuses = list(stats.by_status)
    calls = Table(title="calls per tool and status", header_style="bold")
    calls.add_column("tool")
    for status in statuses:
        calls.add_column(status, justify="right")
    calls.add_column("p50 ms", justify="right")
    calls.add_column("p95 ms", justify="right")
    for tool, counts in stats.by_tool.items():
        timing = stats.durations_ms.get(tool)
        calls.add_row(
            tool,
            *(str(counts.get(status, 0)) for status in statuses),
            _ms(timing.p50 if timing else None),
            _ms(timing.p95 if timing else None),
        )
    overall = stats.durations_ms.get("*")
    calls.add_row(
        "all",
        *(str(stats.by_status[status]) for status in statuses),
        _ms(overall.p50 if overall else None),
        _ms(overall.p95 if overall else None),
        style="bold",
    )
    console.print(calls)
    if stats.denial_reasons:
        reasons = Table(title="denial reasons", header_style="bold")
        reasons.add_column("reason", overflow="fold")
        reasons.add_column("count", justify="right")
        for reason, count in list(stats.denial_reasons.items())[:20]:
            reasons.add_row(reason, str(count))
        console.print(reasons)


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"
