"""A full disk while the tool runs: the outcome stays true (issue 13, case 2).

The tool ran, so the call is reported with its real status and result,
flagged as not fully audited (`audited: false`, `audit_error`), never as
`audit_error` "so no tool runs": a caller must not retry a payment that went
through. As root (CI) the disk is a real 64 KiB tmpfs that the tool itself
fills; otherwise a sink that fails the same writes stands in for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from runtime import CallContext, CallStatus, ToolCallRequest, ToolRegistry
from runtime.agent import Agent, RunStatus
from runtime.approvals.resume import run_approved
from runtime.audit.chain import HashChainSink
from runtime.audit.events import Event
from runtime.audit.sink import AuditWriteError
from runtime.cli.gate_options import EXIT_NOT_AUDITED
from runtime.model import OpenAICompatibleClient, RetryPolicy
from runtime.module_loader import load_module
from runtime.pipeline import ToolCallPipeline
from runtime.policy.decision import allow_all
from runtime.sandbox.executor import InProcessExecutor
from runtime.testing import ScriptedReply, ScriptedServer

ROOT = Path(__file__).resolve().parents[2]
AS_ROOT = os.geteuid() == 0

# A payment whose own ledger fills the disk while it runs (a 64 KiB tmpfs; the
# cap keeps it from ever filling a real disk); its receipt is larger than any
# page's slack, so its stored result cannot be appended.
PAY_TOOLS = '''
import errno
import os

from runtime import tool

PAID = []


@tool
def pay(to: str, ledger: str) -> dict:
    """Pay someone, writing the ledger until the disk is full.

    Args:
        to: Who is paid.
        ledger: File the ledger goes to.
    """
    PAID.append(to)
    fd = os.open(ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(64):  # 256 KiB at most
            os.write(fd, b"x" * 4096)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    return {"paid": to, "receipt": ["line " + str(i) + " " + "r" * 900 for i in range(8)]}
'''


class _FullAfterTheTool(HashChainSink):
    """Stand-in when a tmpfs cannot be mounted: the writes a full disk refuses fail."""

    def write(self, event: str, fields: Mapping[str, Any]) -> None:
        if event in (Event.EXECUTION_FINISHED, Event.RUN_FINISHED):
            raise AuditWriteError("cannot write audit log: No space left on device")
        super().write(event, fields)

    def close(self) -> None:
        super().close()
        raise AuditWriteError("cannot write audit log: No space left on device")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A directory on a 64 KiB tmpfs (as root), else a plain one."""
    target = tmp_path / "small-disk"
    target.mkdir()
    if not AS_ROOT:
        yield target
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


@pytest.fixture
def pay_module(tmp_path: Path) -> Path:
    path = tmp_path / "pay_tools.py"
    path.write_text(PAY_TOOLS)
    return path


def _sink(path: Path) -> HashChainSink:
    cls = HashChainSink if AS_ROOT else _FullAfterTheTool
    return cls(path, store_results=True)


async def test_a_call_that_ran_is_reported_as_run_when_its_record_cannot_be_written(
    disk: Path, pay_module: Path
) -> None:
    module = load_module(str(pay_module))
    sink = _sink(disk / "audit.jsonl")
    pipeline = ToolCallPipeline(
        ToolRegistry.from_module(module), InProcessExecutor(), audit=sink, policy=allow_all()
    )
    args = json.dumps({"to": "bob", "ledger": str(disk / "ledger")})
    outcome = await pipeline.process(ToolCallRequest("c1", "pay", args), CallContext())
    with pytest.raises(AuditWriteError):
        sink.close()
    assert module.PAID == ["bob"]
    assert outcome.status is CallStatus.OK
    assert outcome.result["paid"] == "bob"
    assert not outcome.audited
    assert outcome.audit_error is not None
    assert outcome.audit_error.startswith("the call ran (ok) but its execution.finished record")
    assert "No space left on device" in outcome.audit_error
    printed = outcome.to_dict()
    assert printed["status"] == "ok" and printed["audited"] is False
    assert "no tool runs" not in json.dumps(printed)


async def test_an_agent_run_stops_and_names_the_call_that_ran_unaudited(
    disk: Path, pay_module: Path
) -> None:
    module = load_module(str(pay_module))
    sink = _sink(disk / "audit.jsonl")
    args = {"to": "bob", "ledger": str(disk / "ledger")}
    with ScriptedServer([ScriptedReply.call("pay", args)]) as server:
        client = OpenAICompatibleClient(server.base_url, server.model, retry=RetryPolicy(1))
        agent = Agent(client, ToolRegistry.from_module(module), audit=sink, policy=allow_all())
        result = await agent.run("pay bob")
        await client.aclose()
        asked = len(server.requests)
    with pytest.raises(AuditWriteError):
        sink.close()
    assert asked == 1  # no further turn, no further tool
    assert result.status is RunStatus.AUDIT_ERROR
    assert result.error is not None
    assert "these calls ran but are not fully audited: pay (ok)" in result.error
    [call] = result.tool_calls
    assert (call.status, call.audited) == (CallStatus.OK, False)
    assert result.to_dict()["tool_calls"][0]["audited"] is False


def test_agentrt_call_prints_the_result_and_exits_3_when_the_log_fills_up(
    disk: Path, pay_module: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    argv = [
        "call", "--module", str(pay_module), "--tool", "pay",
        "--args", json.dumps({"to": "bob", "ledger": str(disk / "ledger")}),
        "--policy", "none", "--sandbox", "inprocess", "--audit-log", str(disk / "audit.jsonl"),
    ]  # fmt: skip
    if AS_ROOT:  # the real thing: a subprocess writing to a full tmpfs
        done = subprocess.run(
            [sys.executable, "-m", "runtime", *argv],
            capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
        )  # fmt: skip
        code, out, err = done.returncode, done.stdout, done.stderr
    else:
        import runtime.audit.chain
        from runtime.cli import main

        monkeypatch.setattr(runtime.audit.chain, "HashChainSink", _FullAfterTheTool)
        code = main(argv)
        out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert code == EXIT_NOT_AUDITED == 3, err
    printed = json.loads(out)
    assert printed["status"] == "ok" and printed["result"]["paid"] == "bob"
    assert printed["audited"] is False
    assert "No space left on device" in printed["audit_error"]
    assert "not fully audited" in err


class _NoGrants(HashChainSink):
    """The log refuses the `approval.granted` record (the disk filled meanwhile)."""

    def write(self, event: str, fields: Mapping[str, Any]) -> None:
        if event == Event.APPROVAL_GRANTED:
            raise AuditWriteError("cannot write audit log: No space left on device")
        super().write(event, fields)


async def test_an_approved_call_whose_grant_cannot_be_recorded_is_not_run_and_stays_approved(
    tmp_path: Path, pay_module: Path
) -> None:
    from runtime.approvals.store import ApprovalStatus, ApprovalStore
    from runtime.policy.decision import PolicyDecision

    module = load_module(str(pay_module))
    store = ApprovalStore(tmp_path / "approvals.db")
    record = store.create(
        call_id="c1",
        tool="pay",
        arguments={"to": "bob", "ledger": str(tmp_path / "ledger")},
        decision=PolicyDecision(decision="require_approval", reason="payments need a human"),
        context=CallContext(),
        run_id="r1",
    )
    store.approve(record.id)
    registry = ToolRegistry.from_module(module)
    refusing = _NoGrants(tmp_path / "refusing.jsonl")
    pipeline = ToolCallPipeline(registry, InProcessExecutor(), audit=refusing, policy=allow_all())
    outcome = await run_approved(pipeline, store.get(record.id), store, CallContext())
    refusing.close()
    assert outcome.status is CallStatus.AUDIT_ERROR and outcome.error is not None
    assert "was not run (resume it once the log is writable)" in outcome.error.message
    assert module.PAID == []
    assert store.get(record.id).status is ApprovalStatus.APPROVED  # the claim was given back
    working = HashChainSink(tmp_path / "working.jsonl")
    pipeline = ToolCallPipeline(registry, InProcessExecutor(), audit=working, policy=allow_all())
    again = await run_approved(pipeline, store.get(record.id), store, CallContext())
    working.close()
    store.close()
    assert again.status is CallStatus.OK and module.PAID == ["bob"]
