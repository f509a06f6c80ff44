"""Crashes and failing disks: kill -9 mid-write, torn tails, disk full, unwritable logs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.audit.chain import HashChainSink
from runtime.audit.sink import AuditWriteError
from runtime.audit.verify import verify

KEY = "crash-test-key"

_WRITER = """
import sys
from runtime.audit.chain import HashChainSink
sink = HashChainSink(sys.argv[1], hmac_key={key!r}, max_bytes=50_000)
i = 0
while True:
    sink.write("execution.finished", {{"gen_ai.tool.name": "search", "i": i, "pad": "x" * 100}})
    i += 1
    if i == 300:
        print("ready", flush=True)
"""


def test_kill_9_mid_write_leaves_a_log_that_verifies(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER.format(key=KEY), str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        # Observable event: the child has written 300 records and keeps writing.
        assert child.stdout.readline().strip() == "ready", (
            child.stderr.read() if child.stderr else ""
        )
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL

    report = verify([log], key=KEY)
    assert report.ok, report.problems
    assert report.records >= 300
    assert {n.kind for n in report.notices} <= {"torn_tail", "unanchored_tail", "unclean_close"}
    assert "unclean_close" in {n.kind for n in report.notices}

    # A new writer resumes the chain where the killed one stopped.
    with HashChainSink(log, hmac_key=KEY, max_bytes=50_000) as sink:
        resumed_at = sink.seq
        sink.write("run.started", {})
    assert resumed_at >= report.records
    after = verify([log], key=KEY)
    assert after.ok, after.problems
    assert after.last_seq == resumed_at + 1
    assert {n.kind for n in after.notices} <= {"recovered"}


def test_reopening_after_a_torn_line_records_the_recovery(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with HashChainSink(log, hmac_key=KEY) as sink:
        for i in range(3):
            sink.write("execution.finished", {"i": i})
    torn = b'{"event":"execution.finished","fields":{"i":3,"pad":"xx'
    with open(log, "ab") as handle:
        handle.write(torn)
    assert "torn_tail" in {n.kind for n in verify([log], key=KEY).notices}

    with HashChainSink(log, hmac_key=KEY) as sink:
        sink.write("execution.finished", {"i": 3})
    report = verify([log], key=KEY)
    assert report.ok and report.records == 5
    assert [n.kind for n in report.notices] == ["recovered"]
    recovered = log.read_bytes().splitlines()[3]
    assert b'"agentrt.recovery.dropped_bytes":%d' % len(torn) in recovered
    assert torn not in log.read_bytes()


@contextlib.contextmanager
def tiny_tmpfs(directory: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    """Mount a real, tiny tmpfs (needs root); skip the test where that is impossible."""
    directory.mkdir()
    options = f"size={size}" + (",ro" if read_only else "")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def test_disk_full_fails_closed_and_recovers(tmp_path: Path) -> None:
    with tiny_tmpfs(tmp_path / "mnt", "96k") as mount:
        log = mount / "audit.jsonl"
        filler = mount / "filler"
        with HashChainSink(log, hmac_key=KEY, checkpoint_interval_s=3600) as sink:
            with open(filler, "wb") as handle, contextlib.suppress(OSError):
                handle.write(b"\0" * 80_000)  # take most of the space
            written = 0
            with pytest.raises(AuditWriteError) as failure:
                for i in range(10_000):
                    sink.write("execution.finished", {"i": i, "pad": "y" * 300})
                    written += 1
            message = str(failure.value)
            assert "No space left on device" in message
            assert "tool execution is stopped" in message
            assert written > 0
            # What is on disk is intact: no half record was left behind.
            report = verify([log], key=KEY)
            assert report.ok and report.records == written, report.problems
            assert report.notices == [] or {n.kind for n in report.notices} <= {
                "unanchored_tail",
                "unclean_close",
            }
            # Space comes back: the same sink carries on with the chain.
            filler.unlink()
            sink.write("execution.finished", {"i": "after"})
        final = verify([log], key=KEY)
        assert final.ok and final.records == written + 1, final.problems
        assert final.notices == []


def test_dev_full_raises_a_clear_error(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    log = tmp_path / "audit.jsonl"
    log.symlink_to("/dev/full")
    sink = HashChainSink(log, hmac_key=KEY)
    try:
        for _ in range(2):  # and keeps refusing
            with pytest.raises(AuditWriteError, match="No space left on device"):
                sink.write("tool.proposed", {"gen_ai.tool.name": "x"})
    finally:
        sink.close()


def test_read_only_volume_refuses_to_open(tmp_path: Path) -> None:
    with (
        tiny_tmpfs(tmp_path / "ro", "64k", read_only=True) as mount,
        pytest.raises(AuditWriteError, match="Read-only file system"),
    ):
        HashChainSink(mount / "audit.jsonl", hmac_key=KEY)


def test_log_path_under_a_file_refuses_to_open(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    with pytest.raises(AuditWriteError, match="cannot open audit log"):
        HashChainSink(tmp_path / "not-a-dir" / "audit.jsonl", hmac_key=KEY)


def test_corrupt_last_record_refuses_to_resume(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    with HashChainSink(log, hmac_key=KEY) as sink:
        sink.write("run.started", {"x": 1})
    log.write_bytes(log.read_bytes().replace(b'"x":1', b'"x":2'))
    with pytest.raises(AuditWriteError, match="does not verify"):
        HashChainSink(log, hmac_key=KEY)
    assert os.path.exists(log)  # nothing was thrown away
