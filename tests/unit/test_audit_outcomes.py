"""Every call ends in exactly one audit record carrying its status (issue 13, case 5).

Calls go through the real `ToolCallPipeline` (policy, in-process executor,
hash-chained log); the log is then read back through `agentrt audit
query|stats|verify`, so a reader looking for a key no writer writes fails here.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from runtime import CallContext, CallStatus, ToolCallRequest, ToolRegistry, tool
from runtime.approvals.resume import run_approved
from runtime.approvals.store import ApprovalStore
from runtime.audit.chain import HashChainSink
from runtime.audit.events import CALL_END_EVENTS, Event, Field
from runtime.audit.query import iter_records
from runtime.cli import main
from runtime.pipeline import CallOutcome, ToolCallPipeline
from runtime.policy.loader import load_policies
from runtime.policy.ratelimit import InMemoryRateLimitStore
from runtime.sandbox.executor import InProcessExecutor

KEY = "outcomes-test-key"
POLICY = """\
apiVersion: agentrt/v1
kind: ToolPolicy
metadata: {id: outcomes}
rules:
  - {id: allow-echo, effect: allow, tools: [echo, fail, slow], when: {args.text: {max_len: 20}}}
  - id: deny-secrets
    effect: deny
    tools: ["*"]
    reason: secrets are never echoed
    when: {args.text: {regex: '.*secret.*'}}
  - {id: approve-send, effect: require_approval, tools: [send]}
"""


@tool
def echo(text: str) -> str:
    """Return the text."""
    return text


@tool
def send(text: str) -> str:
    """Pretend to send the text."""
    return f"sent {text}"


@tool
def fail(text: str) -> str:
    """Always raise."""
    raise RuntimeError(f"failed on {text}")


@tool(timeout_s=0.05)
async def slow(text: str) -> str:
    """Take longer than allowed."""
    await asyncio.sleep(5)
    return text


@pytest.fixture(autouse=True)
def audit_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTRT_AUDIT_HMAC_KEY", KEY)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


def pipeline_for(tmp_path: Path, sink: HashChainSink) -> ToolCallPipeline:
    (tmp_path / "policies").mkdir(exist_ok=True)
    (tmp_path / "policies" / "outcomes.yaml").write_text(POLICY)
    policy = load_policies(tmp_path / "policies", rate_limits=InMemoryRateLimitStore())
    registry = ToolRegistry([echo, send, fail, slow])
    return ToolCallPipeline(registry, InProcessExecutor(), policy=policy, audit=sink)


async def run_calls(
    pipeline: ToolCallPipeline, calls: list[tuple[str, dict[str, Any] | str]]
) -> list[CallOutcome]:
    context = CallContext(tenant="acme", run_id="run-1")
    outcomes = []
    for index, (name, arguments) in enumerate(calls):
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
        outcomes.append(
            await pipeline.process(ToolCallRequest(f"call_{index}", name, raw), context)
        )
    return outcomes


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def end_records(log: Path) -> dict[str, list[tuple[str, str]]]:
    """(event, status) of the records that carry a status, per call id."""
    found: dict[str, list[tuple[str, str]]] = {}
    for _line, record in iter_records([log]):
        fields = record["fields"]
        if Field.STATUS in fields and Field.TOOL_CALL_ID in fields:
            found.setdefault(fields[Field.TOOL_CALL_ID], []).append(
                (record["event"], fields[Field.STATUS])
            )
    return found


async def test_denials_are_visible_to_query_stats_and_verify(
    tmp_path: Path, log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with HashChainSink(log) as sink:
        outcomes = await run_calls(
            pipeline_for(tmp_path, sink),
            [
                ("echo", {"text": "hello"}),
                ("echo", {"text": "a secret"}),  # deny rule
                ("echo", {"text": "x" * 50}),  # no allow rule holds: default deny
                ("send", {"text": "top secret"}),  # deny wins over approval
                ("echo", {"text": "hi"}),
                ("echo", {"text": "secret again"}),
                ("fail", {"text": "the secret"}),
            ],
        )
    assert Counter(o.status for o in outcomes) == {CallStatus.DENIED: 5, CallStatus.OK: 2}

    denied = [json.loads(line) for line in _query(capsys, log, "--status", "denied")]
    assert len(denied) == 5
    assert {r["event"] for r in denied} == {Event.TOOL_DENIED}
    assert sorted(r["fields"][Field.TOOL_CALL_ID] for r in denied) == [
        "call_1",
        "call_2",
        "call_3",
        "call_5",
        "call_6",
    ]

    stats = cli_json(capsys, "audit", "stats", str(log), "--json")
    assert stats["calls"] == 7
    assert stats["denials"] == 5
    assert stats["by_status"] == {"denied": 5, "ok": 2}
    assert stats["denial_reasons"]["secrets are never echoed"] == 4
    default_deny = [r for r in stats["denial_reasons"] if "default deny" in r]
    assert len(default_deny) == 1 and stats["denial_reasons"][default_deny[0]] == 1

    report = cli_json(capsys, "audit", "verify", str(log), "--json")
    assert report["ok"] is True
    assert report["records"] == stats["records"]


def _query(capsys: pytest.CaptureFixture[str], log: Path, *argv: str) -> list[str]:
    assert main(["audit", "query", str(log), "--json", *argv]) == 0
    return capsys.readouterr().out.splitlines()


async def test_every_outcome_ends_in_exactly_one_status_record(tmp_path: Path, log: Path) -> None:
    with HashChainSink(log) as sink:
        pipeline = pipeline_for(tmp_path, sink)
        outcomes = await run_calls(
            pipeline,
            [
                ("echo", {"text": "ok"}),
                ("echo", {"text": "secret"}),
                ("send", {"text": "hello"}),
                ("echo", {"text": 5}),
                ("nope", {}),
                ("fail", {"text": "boom"}),
                ("slow", {"text": "zzz"}),
                ("echo", "{not json"),
            ],
        )
        context = CallContext(tenant="acme", run_id="run-1")
        outcomes.append(
            pipeline.too_many_calls(ToolCallRequest("call_8", "echo", "{}"), context, limit=8)
        )
    assert [o.status for o in outcomes] == [
        CallStatus.OK,
        CallStatus.DENIED,
        CallStatus.PENDING_APPROVAL,
        CallStatus.INVALID_ARGUMENTS,
        CallStatus.UNKNOWN_TOOL,
        CallStatus.TOOL_ERROR,
        CallStatus.TIMEOUT,
        CallStatus.INVALID_ARGUMENTS,
        CallStatus.DENIED,
    ]
    ends = end_records(log)
    for outcome in outcomes:
        records = ends[outcome.request.id]
        assert len(records) == 1, (outcome.request.id, records)
        event, status = records[0]
        assert status == outcome.status.value
        assert event in CALL_END_EVENTS


async def test_a_resumed_approval_ends_once_more_with_its_final_status(
    tmp_path: Path, log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    approvals = ApprovalStore(tmp_path / "approvals.db")
    context = CallContext(tenant="acme", run_id="run-1")
    with HashChainSink(log) as sink:
        pipeline = pipeline_for(tmp_path, sink)
        waiting = await run_calls(pipeline, [("send", {"text": "a"}), ("send", {"text": "b"})])
        assert [o.status for o in waiting] == [CallStatus.PENDING_APPROVAL] * 2
        records = []
        for outcome in waiting:
            assert outcome.decision is not None and outcome.arguments is not None
            records.append(
                approvals.create(
                    call_id=outcome.request.id,
                    tool=outcome.tool,
                    arguments=outcome.arguments,
                    decision=outcome.decision,
                    context=context,
                )
            )
        approvals.approve(records[0].id, by="alice")
        approvals.reject(records[1].id, by="bob", reason="not today")
        done = [
            await run_approved(pipeline, approvals.get(r.id), approvals, context) for r in records
        ]
    approvals.close()
    assert [o.status for o in done] == [CallStatus.OK, CallStatus.DENIED]
    ends = end_records(log)
    assert ends["call_0"] == [
        (Event.APPROVAL_REQUESTED, "pending_approval"),
        (Event.EXECUTION_FINISHED, "ok"),
    ]
    assert ends["call_1"] == [
        (Event.APPROVAL_REQUESTED, "pending_approval"),
        (Event.APPROVAL_REJECTED, "denied"),
    ]
    stats = cli_json(capsys, "audit", "stats", str(log), "--json")
    assert stats["by_status"] == {"pending_approval": 2, "ok": 1, "denied": 1}
    assert stats["denial_reasons"] == {"not today": 1}
