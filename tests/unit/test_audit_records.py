"""The record format: canonical JSON, the line layout, keys and file discovery."""

from __future__ import annotations

import enum
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from runtime.audit.records import (
    GENESIS_HASH,
    HMAC_KEY_ENV,
    AuditRecord,
    HmacKeyError,
    canonical_json,
    discover_logs,
    encode_record,
    json_safe,
    resolve_hmac_key,
    split_line,
)


class Color(enum.StrEnum):
    RED = "red"


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": [1, 2], "é": "ü"}) == '{"a":[1,2],"b":1,"é":"ü"}'.encode()


def test_canonical_json_never_emits_nan_or_bad_utf8() -> None:
    text = canonical_json({"x": float("nan"), "y": "\ud800", "z": {3, 1}, "c": Color.RED})
    data = json.loads(text)  # strict JSON again
    assert data == {"c": "red", "x": "nan", "y": "\ufffd", "z": [1, 3]}
    text.decode("utf-8")


def test_json_safe_marks_bytes_with_size_and_hash() -> None:
    assert json_safe(b"abc") == {
        "redacted": "bytes",
        "len": 3,
        "sha256": hashlib.sha256(b"abc").hexdigest(),
    }


def test_encoded_line_is_canonical_record_with_hash_last() -> None:
    fields = {"gen_ai.tool.name": "search", "n": 1.5}
    line, digest = encode_record(
        7, "2025-01-31T12:00:00.000001Z", "policy.decided", canonical_json(fields), GENESIS_HASH
    )
    record = json.loads(line)
    assert list(record) == ["event", "fields", "prev_hash", "seq", "ts", "hash"]
    assert record["hash"] == digest
    body = {k: v for k, v in record.items() if k != "hash"}
    # Both ways of computing the hash agree: parse + canonicalise, or strip bytes.
    assert hashlib.sha256(canonical_json(body)).hexdigest() == digest
    assert AuditRecord.from_line(line).canonical_hash() == digest
    assert line.endswith(b"\n") and line.count(b"\n") == 1


def test_split_line_reads_chain_fields_and_detects_edits() -> None:
    line, digest = encode_record(
        42, "2025-01-31T12:00:00.000001Z", "e", canonical_json({"a": "x"}), "ab" * 32
    )
    parts = split_line(line)
    assert parts is not None
    assert (parts.seq, parts.prev_hash, parts.hash, parts.hash_ok) == (
        42,
        ("ab" * 32).encode(),
        digest.encode(),
        True,
    )
    edited = split_line(line.replace(b'"a":"x"', b'"a":"y"'))
    assert edited is not None and not edited.hash_ok
    assert split_line(b'{"not": "a record"}\n') is None
    assert split_line(line[:40]) is None


def test_nested_prev_hash_key_in_fields_does_not_confuse_split() -> None:
    fields = {"agentrt.tool.arguments": {"prev_hash": "f" * 64, "seq": 99}}
    line, _ = encode_record(3, "2025-01-31T12:00:00.000001Z", "e", canonical_json(fields), "0" * 64)
    parts = split_line(line)
    assert parts is not None and parts.seq == 3 and parts.prev_hash == b"0" * 64 and parts.hash_ok


def test_key_from_argument_then_env_then_generated_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv(HMAC_KEY_ENV, "from-env")
    assert resolve_hmac_key(log, "given") == b"given"
    assert resolve_hmac_key(log) == b"from-env"
    monkeypatch.delenv(HMAC_KEY_ENV)
    assert resolve_hmac_key(log, create=False) is None
    key = resolve_hmac_key(log)
    key_file = tmp_path / "audit.jsonl.key"
    assert key is not None and len(key) == 64
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert resolve_hmac_key(log) == key  # read back, not regenerated


def test_key_file_readable_by_others_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(HMAC_KEY_ENV, raising=False)
    key_file = tmp_path / "audit.jsonl.key"
    key_file.write_text("k" * 64)
    os.chmod(key_file, 0o644)
    with pytest.raises(HmacKeyError, match="chmod 600"):
        resolve_hmac_key(tmp_path / "audit.jsonl")


def test_discover_logs_orders_segments_before_active(tmp_path: Path) -> None:
    base = tmp_path / "audit.jsonl"
    for name in ("audit.jsonl", "audit.jsonl.000002", "audit.jsonl.000001", "audit.jsonl.key"):
        (tmp_path / name).write_text("")
    (tmp_path / "other.jsonl.000001").write_text("")
    (log,) = discover_logs([base])
    assert [p.name for p in log.files] == [
        "audit.jsonl.000001",
        "audit.jsonl.000002",
        "audit.jsonl",
    ]
    assert log.checkpoints.name == "audit.jsonl.checkpoints"
    (only_segment,) = discover_logs([tmp_path / "audit.jsonl.000002"])
    assert [p.name for p in only_segment.files] == ["audit.jsonl.000002"]
