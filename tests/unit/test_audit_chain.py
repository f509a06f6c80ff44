"""HashChainSink: chaining, resume, rotation, checkpoints, concurrency, locking."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from runtime.audit.chain import AuditLogLockedError, HashChainSink, audit_context
from runtime.audit.records import Checkpoint, derive_key
from runtime.audit.sink import AuditSink, AuditWriteError
from runtime.audit.verify import verify

KEY = "chain-test-key"


def fields(index: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "search",
        "gen_ai.tool.call.id": f"call_{index}",
        "agentrt.status": "ok",
        "agentrt.duration_ms": 1.5,
        **extra,
    }


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def assert_verifies(path: Path, records_expected: int | None = None) -> None:
    report = verify([path], key=KEY)
    assert report.ok, report.problems
    if records_expected is not None:
        assert report.records == records_expected


def test_sink_satisfies_the_protocol(tmp_path: Path) -> None:
    sink: AuditSink = HashChainSink(tmp_path / "audit.jsonl", hmac_key=KEY)
    sink.close()


def test_records_are_chained_and_numbered(tmp_path: Path) -> None:
    log = tmp_path / "a" / "b" / "audit.jsonl"
    with HashChainSink(log, hmac_key=KEY) as sink:
        for i in range(5):
            sink.write("execution.finished", fields(i))
        assert sink.seq == 5
    rows = records(log)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["prev_hash"] == "0" * 64
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(rows))
    assert rows[0]["ts"].endswith("Z") and len(rows[0]["ts"]) == 27
    assert rows[2]["fields"]["gen_ai.tool.call.id"] == "call_2"
    report = verify([log], key=KEY)
    assert report.ok and report.records == 5 and report.notices == []


def test_clean_close_writes_a_signed_close_checkpoint(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with HashChainSink(log, hmac_key=KEY) as sink:
        sink.write("run.started", {})
        last_hash = sink.last_hash
    lines = (tmp_path / "audit.jsonl.checkpoints").read_bytes().splitlines()
    checkpoint = Checkpoint.model_validate_json(lines[-1])
    assert (checkpoint.reason, checkpoint.seq, checkpoint.hash) == ("close", 1, last_hash)
    assert checkpoint.mac_ok(derive_key(KEY.encode(), "checkpoint"))


def test_resume_continues_the_chain(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with HashChainSink(log, hmac_key=KEY) as sink:
        for i in range(3):
            sink.write("execution.finished", fields(i))
        last = sink.last_hash
    with HashChainSink(log, hmac_key=KEY) as sink:
        assert (sink.seq, sink.last_hash) == (3, last)
        sink.write("execution.finished", fields(3))
    rows = records(log)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert rows[3]["prev_hash"] == last
    assert_verifies(log, 4)


def test_rotation_and_checkpoints_verify_across_files(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with HashChainSink(log, hmac_key=KEY, max_bytes=2_000) as sink:
        for i in range(40):
            sink.write("execution.finished", fields(i))
            if i % 7 == 0:
                sink.checkpoint()
    segments = sorted(p.name for p in tmp_path.glob("audit.jsonl.0*"))
    assert len(segments) >= 3
    assert all((tmp_path / name).stat().st_size <= 2_000 for name in segments)
    cps = [
        Checkpoint.model_validate_json(line)
        for line in (tmp_path / "audit.jsonl.checkpoints").read_bytes().splitlines()
    ]
    assert {"rotation", "manual", "close"} <= {c.reason for c in cps}
    assert [c.n for c in cps] == list(range(1, len(cps) + 1))
    assert [c.segment for c in cps if c.reason == "rotation"] == segments
    report = verify([log], key=KEY)
    assert report.ok, report.problems
    assert report.records == 40 and len(report.files) == len(segments) + 1
    # Resume after rotation: the new sink continues the numbering.
    with HashChainSink(log, hmac_key=KEY, max_bytes=2_000) as sink:
        sink.write("execution.finished", fields(40))
    assert_verifies(log, 41)


def test_resume_from_last_segment_when_active_file_is_missing(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with HashChainSink(log, hmac_key=KEY, max_bytes=1_000) as sink:
        for i in range(10):
            sink.write("execution.finished", fields(i))
    log.rename(tmp_path / "audit.jsonl.000099")  # as if a crash hit between rename and create
    assert_verifies(log, 10)
    with HashChainSink(log, hmac_key=KEY, max_bytes=1_000) as sink:
        assert sink.seq == 10
        sink.write("execution.finished", fields(10))
    assert_verifies(log, 11)


def test_interval_checkpoints_come_from_the_background_flusher(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    cp_file = tmp_path / "audit.jsonl.checkpoints"
    with HashChainSink(log, hmac_key=KEY, checkpoint_every=10, fsync_interval_s=0.01) as sink:
        for i in range(25):
            sink.write("execution.finished", fields(i))
        # Wait for an observable effect of the flusher, not for a fixed time.
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                if cp_file.exists() and b'"interval"' in cp_file.read_bytes():
                    done.set()
                done.wait(0.005)

        watcher = threading.Thread(target=watch)
        watcher.start()
        assert done.wait(10), "no interval checkpoint was written"
        watcher.join()
    assert_verifies(log, 25)


def test_context_fields_are_merged_but_explicit_fields_win(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with HashChainSink(log, hmac_key=KEY) as sink:
        with audit_context({"agentrt.run_id": "run-1", "agentrt.tenant": "acme", "request": "x"}):
            sink.write("tool.proposed", {"agentrt.tenant": "override"})
        sink.write("tool.proposed", {})
    first, second = (r["fields"] for r in records(log))
    assert first == {"agentrt.run_id": "run-1", "agentrt.tenant": "override"}
    assert second == {}


async def test_fifty_tasks_write_a_valid_chain(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    sink = HashChainSink(log, hmac_key=KEY)

    async def agent(task: int) -> None:
        with audit_context({"agentrt.run_id": f"run-{task}"}):
            for call in range(20):
                sink.write("execution.finished", fields(call, task=task))
                await asyncio.sleep(0)  # interleave with the other tasks

    async with asyncio.TaskGroup() as group:
        for task in range(50):
            group.create_task(agent(task))
    sink.close()
    rows = records(log)
    assert len(rows) == 1000
    assert all(r["fields"]["agentrt.run_id"] == f"run-{r['fields']['task']}" for r in rows)
    assert len({r["fields"]["task"] for r in rows[:60]}) > 1  # really interleaved
    assert_verifies(log, 1000)


def test_threads_never_interleave_lines(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    start = threading.Barrier(8)
    with HashChainSink(log, hmac_key=KEY, fsync="always", max_bytes=40_000) as sink:

        def worker(thread: int) -> None:
            start.wait()
            for call in range(125):
                sink.write("execution.finished", fields(call, thread=thread, pad="x" * 200))

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert_verifies(log, 1000)


def test_second_sink_in_the_same_process_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with (
        HashChainSink(log, hmac_key=KEY),
        pytest.raises(AuditLogLockedError, match="already being written"),
    ):
        HashChainSink(log, hmac_key=KEY)
    HashChainSink(log, hmac_key=KEY).close()  # free again after close


def test_second_process_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    code = (
        "import sys\n"
        "from runtime.audit.chain import HashChainSink, AuditLogLockedError\n"
        "try:\n"
        f"    HashChainSink({str(log)!r}, hmac_key='k')\n"
        "except AuditLogLockedError as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    with HashChainSink(log, hmac_key=KEY):
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 3, result.stderr
    assert "already being written by another writer" in result.stdout
    assert "--audit-log" in result.stdout


def test_write_after_close_raises(tmp_path: Path) -> None:
    sink = HashChainSink(tmp_path / "audit.jsonl", hmac_key=KEY)
    sink.close()
    sink.close()  # idempotent
    with pytest.raises(AuditWriteError, match="closed"):
        sink.write("tool.proposed", {})


def test_unencodable_values_are_stored_not_fatal(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"

    class Opaque:
        def __str__(self) -> str:
            return "opaque-object"

    with HashChainSink(log, hmac_key=KEY) as sink:
        odd: dict[Any, Any] = {"x": Opaque(), "y": float("inf"), "z": (1, 2), 3: "int key"}
        sink.write("tool.proposed", odd)
    (row,) = records(log)
    assert row["fields"] == {"x": "opaque-object", "y": "inf", "z": [1, 2], "3": "int key"}
    assert_verifies(log, 1)


def test_bad_fsync_policy_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fsync"):
        HashChainSink(tmp_path / "audit.jsonl", fsync="sometimes")  # type: ignore[arg-type]


def test_update_redact_paths(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with HashChainSink(log, hmac_key=KEY) as sink:
        sink.write("tool.proposed", {"agentrt.tool.arguments": {"pin": "1234"}})
        sink.set_redact_paths(["args.pin"])
        sink.write("tool.proposed", {"agentrt.tool.arguments": {"pin": "1234"}})
    first, second = (r["fields"]["agentrt.tool.arguments"] for r in records(log))
    assert first == {"pin": "1234"} and second == {"pin": {"redacted": "path"}}
