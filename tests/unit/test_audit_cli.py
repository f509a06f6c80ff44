"""`agentrt audit verify|query|stats` through the real argument parser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.audit.chain import HashChainSink
from runtime.audit.events import Event, Field
from runtime.cli import main

KEY = "cli-test-key"


@pytest.fixture(autouse=True)
def audit_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTRT_AUDIT_HMAC_KEY", KEY)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    with HashChainSink(path) as sink:
        for i in range(6):
            sink.write(
                Event.EXECUTION_FINISHED if i % 2 else Event.TOOL_DENIED,
                {
                    Field.TOOL_NAME: "search" if i % 2 else "send_email",
                    Field.TOOL_CALL_ID: f"call_{i}",
                    Field.STATUS: "ok" if i % 2 else "denied",
                    Field.DECISION: "allow" if i % 2 else "deny",
                    Field.RULE_IDS: [] if i % 2 else ["deny-email"],
                    Field.DURATION_MS: float(i),
                    Field.TENANT: "acme",
                },
            )
    return path


def test_verify_ok(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", str(log)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: 6 records (seq 1..6)")


def test_verify_names_the_first_bad_record(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = log.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"call_2"', b'"call_9"')
    log.write_bytes(b"".join(lines))
    assert main(["audit", "verify", str(log)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("TAMPERED: edited: record seq=3")
    assert f"{log}:3" in out


def test_verify_torn_tail_is_a_warning_with_exit_0(
    log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoints = log.with_name("audit.jsonl.checkpoints")
    checkpoints.write_bytes(b"")  # as after a crash before any checkpoint
    with open(log, "ab") as handle:
        handle.write(b'{"event":"exec')
    assert main(["audit", "verify", str(log)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("OK:")
    assert "warning: torn_tail" in captured.err


def test_verify_json_and_key_file(
    log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTRT_AUDIT_HMAC_KEY")
    wrong = tmp_path / "wrong.key"
    wrong.write_text("not-the-key\n")
    assert main(["audit", "verify", str(log), "--key-file", str(wrong), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["problems"][0]["kind"] == "forged_checkpoint"
    right = tmp_path / "right.key"
    right.write_text(KEY + "\n")
    assert main(["audit", "verify", str(log), "--key-file", str(right)]) == 0


def test_verify_missing_log_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", str(tmp_path / "none.jsonl")]) == 2
    assert "no such audit log" in capsys.readouterr().err


def test_query_json_lines(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "query", str(log), "--tool", "send_email", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["seq"] for r in rows] == [1, 3, 5]
    assert all(r["fields"][Field.DECISION] == "deny" for r in rows)


def test_query_table(
    log: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich folds cells to the terminal width
    assert main(["audit", "query", str(log), "--status", "ok", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "call_1" in out and "call_3" in out and "call_5" not in out
    assert "2 record(s); 1 more not shown" in out


def test_query_bad_time_exits_2(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "query", str(log), "--since", "last tuesday"]) == 2
    assert "ISO 8601" in capsys.readouterr().err


def test_stats_json_and_table(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "stats", str(log), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["calls"] == 6
    assert stats["by_tool"] == {"search": {"ok": 3}, "send_email": {"denied": 3}}
    assert stats["denial_reasons"] == {"deny-email": 3}
    assert main(["audit", "stats", str(log)]) == 0
    out = capsys.readouterr().out
    assert "calls per tool and status" in out and "deny-email" in out


def test_bench_audit_smoke(tmp_path: Path) -> None:
    from runtime.cli.bench_audit import bench_audit

    result = bench_audit(200, tmp_path)
    assert result["verify_ok"] is True
    assert result["records"] == result["stats_calls"] == 200
    assert result["query_matches"] == 10  # read_file x denied: every 20th record
    assert result["write_us_p50"] > 0 and result["verify_records_per_s"] > 0
    assert list(tmp_path.iterdir()) == []  # cleaned up
