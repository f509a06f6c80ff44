"""verify(): every tamper case is detected and names the first bad record."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime.audit.chain import HashChainSink
from runtime.audit.records import canonical_json, encode_record
from runtime.audit.verify import VerifyReport, verify

KEY = "verify-test-key"
RECORDS = 30


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """A closed 30-record log with signed checkpoints at seq 10, 20 and 30."""
    path = tmp_path / "audit.jsonl"
    with HashChainSink(
        path, hmac_key=KEY, checkpoint_every=10_000, checkpoint_interval_s=3600
    ) as sink:
        for i in range(1, RECORDS + 1):
            sink.write("execution.finished", {"gen_ai.tool.name": "search", "i": i})
            if i in (10, 20):
                sink.checkpoint()
    return path


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def rehash(
    line: bytes, *, prev: str | None = None, seq: int | None = None, **change: object
) -> bytes:
    """Re-encode a record with changes, computing a valid hash (a careful forger)."""
    record = json.loads(line)
    record["fields"].update(change)
    new, _ = encode_record(
        seq if seq is not None else record["seq"],
        record["ts"],
        record["event"],
        canonical_json(record["fields"]),
        prev if prev is not None else record["prev_hash"],
    )
    return new


def hash_of(line: bytes) -> str:
    return str(json.loads(line)["hash"])


def tamper(path: Path, change: Callable[[list[bytes]], list[bytes]]) -> VerifyReport:
    path.write_bytes(b"".join(change(lines(path))))
    return verify([path], key=KEY)


def first(report: VerifyReport) -> tuple[str, int | None]:
    assert not report.ok
    problem = report.problems[0]
    return problem.kind, problem.seq


def test_clean_log_verifies(log: Path) -> None:
    report = verify([log], key=KEY)
    assert report.ok and report.records == RECORDS and report.notices == []
    assert report.checkpoints == 3 and report.checkpoints_authenticated
    assert (report.first_seq, report.last_seq) == (1, RECORDS)


def test_edited_field(log: Path) -> None:
    def edit(ls: list[bytes]) -> list[bytes]:
        ls[11] = ls[11].replace(b'"i":12', b'"i":99')
        return ls

    report = tamper(log, edit)
    assert first(report) == ("edited", 12)
    assert report.problems[0].line == 12 and report.problems[0].path == str(log)


def test_edited_field_with_recomputed_hash(log: Path) -> None:
    def edit(ls: list[bytes]) -> list[bytes]:
        ls[11] = rehash(ls[11], i=99)
        return ls

    assert first(tamper(log, edit)) == ("rewritten", 12)


def test_rewritten_tail_up_to_a_checkpoint(log: Path) -> None:
    """A forger who re-hashes everything after an edit is caught by the checkpoint."""

    def rewrite(ls: list[bytes]) -> list[bytes]:
        prev = hash_of(ls[10])
        for index in range(11, len(ls)):
            ls[index] = rehash(ls[index], prev=prev, forged=True)
            prev = hash_of(ls[index])
        return ls

    report = tamper(log, rewrite)
    kind, seq = first(report)
    assert kind == "rewritten" and seq == 11  # somewhere in 11..20, the span it names
    assert "seq=11..20" in report.problems[0].message


def test_deleted_record(log: Path) -> None:
    def delete(ls: list[bytes]) -> list[bytes]:
        del ls[14]
        return ls

    assert first(tamper(log, delete)) == ("deleted", 15)


def test_swapped_pair(log: Path) -> None:
    def swap(ls: list[bytes]) -> list[bytes]:
        ls[4], ls[5] = ls[5], ls[4]
        return ls

    report = tamper(log, swap)
    assert first(report) == ("swapped", 5)
    assert len(report.problems) == 1


def test_inserted_record(log: Path) -> None:
    def insert(ls: list[bytes]) -> list[bytes]:
        forged = rehash(ls[6], prev=hash_of(ls[5]), i=777)  # claims seq 7, chains to 6
        ls.insert(6, forged)
        return ls

    report = tamper(log, insert)
    assert first(report) == ("inserted", 7)
    assert report.problems[0].line == 7  # the forged line, not the real one after it


def test_inserted_record_at_a_checkpoint(log: Path) -> None:
    def insert(ls: list[bytes]) -> list[bytes]:
        ls.insert(9, rehash(ls[9], prev=hash_of(ls[8]), i=777))  # a fake seq 10
        return ls

    report = tamper(log, insert)
    assert first(report) == ("inserted", 10)
    assert report.problems[0].line == 10


def test_truncated_tail(log: Path) -> None:
    report = tamper(log, lambda ls: ls[:25])
    assert first(report) == ("truncated", 26)
    assert "26..30" in report.problems[0].message


def test_forged_checkpoint(log: Path) -> None:
    checkpoints = log.with_name("audit.jsonl.checkpoints")
    rows = checkpoints.read_bytes().splitlines(keepends=True)
    rows[1] = rows[1].replace(b'"seq":20', b'"seq":19')
    checkpoints.write_bytes(b"".join(rows))
    report = verify([log], key=KEY)
    assert first(report) == ("forged_checkpoint", 19)
    assert report.problems[0].line == 2


def test_checkpoint_signed_with_another_key_is_forged(log: Path) -> None:
    report = verify([log], key="another-key")
    assert first(report) == ("forged_checkpoint", 10)


def test_deleted_checkpoint_line(log: Path) -> None:
    checkpoints = log.with_name("audit.jsonl.checkpoints")
    rows = checkpoints.read_bytes().splitlines(keepends=True)
    checkpoints.write_bytes(rows[0] + rows[2])
    assert first(verify([log], key=KEY))[0] == "checkpoint_gap"


def test_torn_final_line_is_a_notice_not_tampering(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with HashChainSink(path, hmac_key=KEY, checkpoint_interval_s=3600) as sink:
        for i in range(5):
            sink.write("execution.finished", {"i": i})
        sink.checkpoint()
        sink.write("execution.finished", {"i": 5})
    # Make it look like a crash: no close checkpoint, a half-written last line.
    checkpoints = path.with_name("audit.jsonl.checkpoints")
    checkpoints.write_bytes(b"".join(checkpoints.read_bytes().splitlines(keepends=True)[:-1]))
    with open(path, "ab") as handle:
        handle.write(b'{"event":"execution.finished","fields":{"i":')
    report = verify([path], key=KEY)
    assert report.ok, report.problems
    kinds = [n.kind for n in report.notices]
    assert kinds == ["torn_tail", "unanchored_tail", "unclean_close"]
    assert report.notices[0].line == 7


def test_missing_rotated_segment(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with HashChainSink(path, hmac_key=KEY, max_bytes=600) as sink:
        for i in range(12):
            sink.write("execution.finished", {"i": i})
    segments = sorted(tmp_path.glob("audit.jsonl.0*"))
    assert len(segments) >= 3
    segments[1].unlink()
    report = verify([path], key=KEY)
    assert first(report)[0] == "deleted"
    segments[0].unlink()
    assert first(verify([path], key=KEY))[0] == "missing_head"


def test_without_key_checkpoints_are_read_but_not_authenticated(
    log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTRT_AUDIT_HMAC_KEY", raising=False)
    report = verify([log])
    assert report.ok and not report.checkpoints_authenticated
    assert [n.kind for n in report.notices] == ["no_key"]


def test_strict_mode_accepts_writer_output_and_rejects_non_canonical(log: Path) -> None:
    assert verify([log], key=KEY, strict=True).ok

    def reorder_keys(ls: list[bytes]) -> list[bytes]:
        record = json.loads(ls[3])
        body = {k: record[k] for k in ("seq", "event", "fields", "prev_hash", "ts")}
        text = json.dumps(body, separators=(",", ":")).encode()
        ls[3] = text[:-1] + b',"hash":"' + record["hash"].encode() + b'"}\n'
        return ls

    report = tamper(log, reorder_keys)
    assert not report.ok  # the fast check already fails: the bytes changed
    assert not verify([log], key=KEY, strict=True).ok


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        verify([tmp_path / "nope.jsonl"])
