"""`agentrt policy test|explain` and `agentrt approvals ...`."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from runtime.approvals.store import ApprovalStatus, ApprovalStore
from runtime.calls import CallContext
from runtime.cli import main
from runtime.policy.decision import PolicyDecision

REPO = Path(__file__).resolve().parents[2]


def test_shipped_policies_pass_their_tests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "test", str(REPO / "runtime" / "policies")]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    assert out.strip().endswith(" 0 failed")


def _policy_dir(tmp_path: Path, case: str) -> Path:
    (tmp_path / "tests").mkdir()
    (tmp_path / "p.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: agentrt/v1
            kind: ToolPolicy
            metadata: {id: p}
            rules:
              - {id: allow-t, effect: allow, tools: [t], when: {args.n: {lte: 3}}}
            """
        )
    )
    (tmp_path / "tests" / "cases.yaml").write_text(textwrap.dedent(case))
    return tmp_path


def test_a_mismatch_fails_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _policy_dir(
        tmp_path,
        """\
        cases:
          - {name: small, tool: t, args: {n: 1}, expect: {decision: allow, rule_ids: [allow-t]}}
          - {name: wrong, tool: t, args: {n: 9}, expect: {decision: allow}}
        """,
    )
    assert main(["policy", "test", str(root)]) == 1
    out = capsys.readouterr().out
    assert "PASS cases.yaml::small" in out
    assert "FAIL cases.yaml::wrong: decision 'deny', expected 'allow'" in out
    assert "1 passed, 1 failed" in out


def test_a_broken_case_file_fails_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _policy_dir(tmp_path, "cases:\n  - {name: x, tool: t, expect: {decision: maybe}}\n")
    assert main(["policy", "test", str(root)]) == 1
    assert "cases[0].expect.decision" in capsys.readouterr().out


def test_no_case_files_is_a_failure(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    assert main(["policy", "test", str(tmp_path)]) == 1


def test_explain_prints_the_decision(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "policy",
            "explain",
            "--policy",
            str(REPO / "runtime" / "policies"),
            "--tool",
            "read_file",
            "--args",
            '{"path": "/workspace-evil/x"}',
            "--tenant",
            "acme",
            "--context",
            "region=eu",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["decision"]["decision"] == "deny"
    assert report["decision"]["rule_ids"] == ["deny-paths-outside-workspace"]
    assert report["decision"]["failed_conditions"] == ["args.path: path_under ['.'] did not hold"]
    assert {r["id"] for r in report["rules"]} >= {"allow-read-workspace", "deny-secret-files"}


KILL_SWITCH = """\
apiVersion: agentrt/v1
kind: ToolPolicy
metadata: {id: ops}
rules:
  - {id: kill-switch, effect: deny, tools: ["*"], when: {context.frozen: {equals: "yes"}}}
  - {id: allow-all, effect: allow, tools: ["*"]}
"""


def test_explain_a_kill_switch_with_and_without_its_context(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ops.yaml").write_text(KILL_SWITCH)
    argv = ["policy", "explain", "--policy", str(tmp_path), "--tool", "t"]
    assert main(argv) == 0
    calm = json.loads(capsys.readouterr().out)
    assert calm["decision"]["decision"] == "allow"
    switch = next(r for r in calm["rules"] if r["id"] == "kill-switch")
    assert (switch["result"], switch["matched"]) == ("no match", False)
    assert switch["failed_conditions"] == [
        "context.frozen: missing, so it does not hold (context.frozen {equals: 'yes'})"
    ]
    assert main([*argv, "--context", "frozen=yes"]) == 0
    frozen = json.loads(capsys.readouterr().out)
    assert frozen["decision"]["rule_ids"] == ["kill-switch"]


@pytest.mark.parametrize("bad", ['{"path": NaN}', '{"a": 1, "a": 2}', "[1]", "{"])
def test_explain_refuses_non_strict_json(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "policy",
        "explain",
        "--policy",
        str(REPO / "runtime" / "policies"),
        "--tool",
        "t",
        "--args",
        bad,
    ]
    assert main(argv) == 2
    assert "agentrt policy explain" in capsys.readouterr().err


def _seed(db: Path) -> str:
    store = ApprovalStore(db)
    record = store.create(
        call_id="c1",
        tool="run_python",
        arguments={"code": "print(1)"},
        decision=PolicyDecision("require_approval", ("approve-run-python",), "needs a human"),
        context=CallContext(tenant="demo", run_id="r1"),
    )
    store.close()
    return record.id


def test_approvals_list_show_reject(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "a.db"
    approval_id = _seed(db)
    assert main(["approvals", "--db", str(db), "list"]) == 0
    assert approval_id in capsys.readouterr().out
    assert main(["approvals", "show", approval_id[:10], "--db", str(db)]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "pending"
    assert main(["approvals", "reject", approval_id, "--db", str(db), "--reason", "no"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "rejected"
    assert main(["approvals", "approve", approval_id, "--db", str(db)]) == 1
    assert "rejected" in capsys.readouterr().err


def test_approvals_edit_then_approve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "a.db"
    approval_id = _seed(db)
    policies = str(REPO / "runtime" / "policies")
    edited = json.dumps({"code": "x" * 20001})
    argv = [
        "approvals",
        "--db",
        str(db),
        "approve",
        approval_id,
        "--args",
        edited,
        "--policy",
        policies,
    ]
    assert main(argv) == 1
    assert json.loads(capsys.readouterr().out)["decision"]["rule_ids"] == ["deny-oversized-code"]
    argv[argv.index(edited)] = '{"code": "print(2)"}'
    assert main([*argv, "--by", "alice"]) == 0
    record = ApprovalStore(db).get(approval_id)
    assert record.status == ApprovalStatus.APPROVED
    assert record.effective_arguments == {"code": "print(2)"}
    assert record.decided_by == "alice"


def test_approvals_edit_checks_the_schema_through_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "a.db"
    approval_id = _seed(db)
    module = tmp_path / "my_tools.py"  # a path, read by the same loader as `--module` elsewhere
    module.write_text(
        "from runtime import tool\n\n"
        "@tool\n"
        "def run_python(code: str) -> str:\n"
        '    """Run code."""\n'
        "    return code\n"
    )
    base = ["approvals", "--db", str(db), "approve", approval_id, "--module", str(module)]
    policies = ["--policy", str(REPO / "runtime" / "policies")]
    assert main([*base, *policies, "--args", '{"code": 5}']) == 2
    err = capsys.readouterr().err
    assert "schema" in err and "code" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert ApprovalStore(db).get(approval_id).status == ApprovalStatus.PENDING
    missing = ["approvals", "--db", str(db), "approve", approval_id, "--module", "no/such.py"]
    assert main([*missing, "--args", '{"code": "print(1)"}']) == 2
    assert "no such tool module file" in capsys.readouterr().err
    assert main([*base, *policies, "--args", '{"code": "print(3)"}']) == 0
    assert ApprovalStore(db).get(approval_id).effective_arguments == {"code": "print(3)"}
