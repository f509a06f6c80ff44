"""One approval resumed by two live processes (issue 13, case 9).

The loser used to report `sandbox_error` "interrupted … may have run" while
the winner was alive and still running the call. It must get the winner's
stored outcome (or, past the winner's own limits, "running elsewhere"), and
the call runs once. Both processes are real `agentrt call --resume`s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

POLICY = """
apiVersion: agentrt/v1
kind: ToolPolicy
metadata: {id: refunds}
rules:
  - {id: approve-refunds, effect: require_approval, tools: [refund]}
"""

# The refund blocks on a FIFO until the test lets it finish, so the second
# process is certain to arrive while the first one is running it.
TOOLS = '''
from pathlib import Path

import pytest

from runtime.policy.decision import allow_all
from runtime import tool

HERE = Path(__file__).parent


@tool(timeout_s=60)
def refund(order: str) -> str:
    """Refund an order.

    Args:
        order: Order id.
    """
    with open(HERE / "ran.txt", "a") as ran:
        ran.write(order + "\\n")
    (HERE / "go").read_text()  # blocks until the test writes to the FIFO
    return "refunded " + order
'''


def agentrt(*args: str) -> list[str]:
    return [sys.executable, "-m", "runtime", *args]


def _open_for_writing(path: Path, timeout_s: float) -> int:
    """Open a FIFO's write end: returns once a reader (the running tool) has it open."""
    opened: list[int] = []
    thread = threading.Thread(target=lambda: opened.append(os.open(path, os.O_WRONLY)))
    thread.start()
    thread.join(timeout_s)
    if not opened:  # unblock the thread before failing
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        thread.join()
        raise AssertionError("the first resume never started the tool")
    return opened[0]


def _wait_until_waiting_on_the_claim(process: subprocess.Popen[str], lock: Path) -> None:
    """Observable state: the second process holds the claim lock file open (or has exited)."""
    deadline = time.monotonic() + 60
    fds = Path(f"/proc/{process.pid}/fd")
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if any(os.readlink(fd) == str(lock) for fd in fds.iterdir()):
                return
        except OSError:  # an fd closed while we looked
            pass
        time.sleep(0.02)  # polling another process's state: there is no event to await


def test_the_loser_of_two_live_resumes_gets_the_winners_outcome(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "refunds.yaml").write_text(POLICY)
    (tmp_path / "race_tools.py").write_text(TOOLS)
    os.mkfifo(tmp_path / "go")
    db = tmp_path / "approvals.db"
    gate = [
        "--module", str(tmp_path / "race_tools.py"), "--policy", str(tmp_path / "policies"),
        "--approvals-db", str(db), "--sandbox", "inprocess",
    ]  # fmt: skip
    asked = subprocess.run(
        agentrt("call", *gate, "--tool", "refund", "--args", '{"order": "B-7"}',
                "--audit-log", "none"),
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    approval_id = json.loads(asked.stdout)["approval_id"]
    approved = subprocess.run(
        agentrt("approvals", "approve", approval_id, "--db", str(db)),
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert approved.returncode == 0, approved.stderr

    def resume(name: str) -> subprocess.Popen[str]:
        log = ["--audit-log", str(tmp_path / f"audit-{name}.jsonl")]
        return subprocess.Popen(
            agentrt("call", *gate, *log, "--resume", approval_id),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip

    first = resume("first")
    second = None
    try:
        go = _open_for_writing(tmp_path / "go", timeout_s=60)  # the first one is in the tool
        second = resume("second")
        _wait_until_waiting_on_the_claim(
            second, db.with_name(db.name + ".claims") / f"{approval_id}.lock"
        )
        os.write(go, b"go")
        os.close(go)
        out_first, err_first = first.communicate(timeout=120)
        out_second, err_second = second.communicate(timeout=120)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()
    assert first.returncode == 0, err_first
    won = json.loads(out_first)
    assert (won["status"], won["result"]) == ("ok", "refunded B-7")
    lost = json.loads(out_second)
    assert second.returncode == 0, out_second + err_second
    assert (lost["status"], lost["result"]) == ("ok", "refunded B-7")
    assert lost["approval_id"] == approval_id
    assert (tmp_path / "ran.txt").read_text() == "B-7\n"  # once


async def test_a_claimant_past_its_limits_is_running_elsewhere_and_a_dead_one_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runtime.approvals.resume
    import runtime.pipeline
    from runtime import CallContext, CallStatus, ToolRegistry, tool
    from runtime.approvals.resume import run_approved
    from runtime.approvals.store import ApprovalStore
    from runtime.pipeline import ToolCallPipeline
    from runtime.policy.decision import PolicyDecision, allow_all
    from runtime.sandbox.executor import InProcessExecutor

    ran: list[str] = []

    @tool(timeout_s=0.05)
    def refund(order: str) -> str:
        """Refund an order."""
        ran.append(order)
        return "refunded"

    monkeypatch.setattr(runtime.pipeline, "TIMEOUT_GRACE_S", 0.0)
    monkeypatch.setattr(runtime.approvals.resume, "CLAIM_WAIT_MARGIN_S", 0.05)
    winner = ApprovalStore(tmp_path / "approvals.db")
    record = winner.create(
        call_id="c1",
        tool="refund",
        arguments={"order": "B-7"},
        decision=PolicyDecision(decision="require_approval", reason="big"),
        context=CallContext(),
        run_id="r1",
    )
    winner.approve(record.id)
    winner.claim_for_execution(record.id)  # ... and keeps running it
    loser = ApprovalStore(tmp_path / "approvals.db")  # as a second process would
    pipeline = ToolCallPipeline(ToolRegistry([refund]), InProcessExecutor(), policy=allow_all())
    busy = await run_approved(pipeline, loser.get(record.id), loser, CallContext())
    assert busy.status is CallStatus.SANDBOX_ERROR and busy.error is not None
    assert busy.error.type == "running_elsewhere"
    assert f"another process (pid {os.getpid()})" in busy.error.message
    winner.close()  # the claimant dies without an outcome
    gone = await run_approved(pipeline, loser.get(record.id), loser, CallContext())
    assert gone.error is not None and gone.error.type == "interrupted"
    assert "stopped before recording an outcome" in gone.error.message
    assert ran == []
    loser.close()
