"""The CLI contract, run as a user runs it: a subprocess per command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.testing import ScriptedReply, ScriptedServer

ROOT = Path(__file__).resolve().parents[2]


def agentrt(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


TOOL_FILE = '''
from runtime import tool

@tool
def greet(name: str, times: int = 1) -> str:
    """Greet someone.

    Args:
        name: Who.
        times: How often.
    """
    return " ".join(["hello " + name] * times)
'''


@pytest.fixture
def tool_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_tools.py"
    path.write_text(TOOL_FILE)
    return path


def test_tools_list_and_schema_from_a_file_path(tool_file: Path) -> None:
    listed = agentrt("tools", "list", "--module", str(tool_file), "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["name"] == "greet"
    schema = agentrt("tools", "schema", "--module", str(tool_file))
    entry = json.loads(schema.stdout)[0]
    assert entry["function"]["parameters"]["properties"]["name"]["description"] == "Who."


def test_tools_schema_from_a_dotted_module() -> None:
    schema = agentrt("tools", "schema", "--module", "tools")
    names = {entry["function"]["name"] for entry in json.loads(schema.stdout)}
    assert {"calculate", "convert_units", "read_file", "list_dir", "run_python"} <= names


@pytest.mark.parametrize(
    ("arguments", "tool", "status", "code"),
    [
        ('{"name": "ada", "times": 2}', "greet", "ok", 0),
        ('{"name": "ada", "times": "2"}', "greet", "invalid_arguments", 1),
        ('{"name": "ada", "extra": 1}', "greet", "invalid_arguments", 1),
        ('{"name": NaN}', "greet", "invalid_arguments", 1),
        ("{}", "wave", "unknown_tool", 1),
    ],
)
def test_call_prints_one_json_object_and_exits_zero_only_for_ok(
    tool_file: Path, arguments: str, tool: str, status: str, code: int
) -> None:
    result = agentrt(
        "call", "--module", str(tool_file), "--tool", tool, "--args", arguments,
        "--policy", "none", "--sandbox", "inprocess", "--audit-log", "none",
    )  # fmt: skip
    assert result.returncode == code, result.stderr
    payload = json.loads(result.stdout)
    assert payload["status"] == status and payload["tool"] == tool
    if status == "ok":
        assert payload["result"] == "hello ada hello ada"
    else:
        assert payload["error"]["message"]


def test_call_with_a_missing_module_is_a_usage_error() -> None:
    result = agentrt("call", "--module", "no_such_module_x", "--tool", "t")
    assert result.returncode == 2
    assert "cannot import module 'no_such_module_x'" in result.stderr


def test_run_json_against_the_scripted_server(tool_file: Path) -> None:
    replies = [ScriptedReply.call("greet", {"name": "bob"}), ScriptedReply.message("said hello")]
    with ScriptedServer(replies) as server:
        result = agentrt(
            "run", "--module", str(tool_file), "--base-url", server.base_url,
            "--model", server.model, "--temperature", "0.3", "--top-k", "10", "--policy", "none",
            "--sandbox", "inprocess", "--audit-log", "none", "--json", "greet bob",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["status"] == "completed" and payload["output"] == "said hello"
    assert payload["tool_calls"][0]["tool"] == "greet"
    assert payload["tool_calls"][0]["arguments"] == {"name": "bob"}
    assert payload["tool_calls"][0]["status"] == "ok"
    assert payload["usage"]["total_tokens"] > 0
    assert server.requests[0]["temperature"] == 0.3 and server.requests[0]["top_k"] == 10


def test_run_against_a_dead_server_is_a_clear_error(tool_file: Path) -> None:
    server = ScriptedServer().start()
    url = server.base_url
    server.stop()
    result = agentrt(
        "run", "--module", str(tool_file), "--base-url", url, "--model", "m",
        "--sandbox", "inprocess", "--audit-log", "none", "--json", "hi",
    )  # fmt: skip
    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert payload["status"] == "model_error"
    assert "cannot reach the model server" in payload["error"]


def test_impossible_sampling_values_are_refused_before_any_request(tool_file: Path) -> None:
    result = agentrt(
        "run", "--module", str(tool_file), "--base-url", "http://127.0.0.1:9/v1",
        "--model", "m", "--temperature", "-1", "hi",
    )  # fmt: skip
    assert result.returncode == 2
    assert "--temperature" in result.stderr


POLICY_ROOT = ROOT / "runtime" / "policies"


@pytest.mark.parametrize(
    ("tool", "arguments", "status", "rule"),
    [
        ("calculate", '{"expression": "6*7"}', "ok", None),
        ("read_file", '{"path": "../../etc/shadow"}', "denied", "deny-paths-outside-workspace"),
        ("read_file", '{"path": "/etc/shadow"}', "denied", "deny-paths-outside-workspace"),
        ("run_python", '{"code": "print(1)"}', "pending_approval", "approve-run-python"),
    ],
)
def test_call_with_the_default_policy_prints_the_decision(
    tmp_path: Path, tool: str, arguments: str, status: str, rule: str | None
) -> None:
    result = agentrt(
        "call", "--module", "tools", "--tool", tool, "--args", arguments,
        "--policy", str(POLICY_ROOT), "--tenant", "demo", "--sandbox", "inprocess",
        "--approvals-db", str(tmp_path / "approvals.db"), "--audit-log", "none",
    )  # fmt: skip
    payload = json.loads(result.stdout)
    assert payload["status"] == status, payload
    assert result.returncode == (0 if status == "ok" else 1)
    assert payload["decision"]["policy_sha256"]
    if rule is not None:
        assert rule in payload["decision"]["rule_ids"]
    if status == "pending_approval":
        assert payload["approval_id"]


def test_without_a_policy_flag_the_shipped_policy_denies_what_it_does_not_name(
    tool_file: Path, tmp_path: Path
) -> None:
    gate = ["--sandbox", "inprocess", "--audit-log", "none"]
    gate += ["--approvals-db", str(tmp_path / "approvals.db")]
    call = ["call", "--module", str(tool_file), "--tool", "greet", "--args", '{"name": "ada"}']
    denied = agentrt(*call, *gate, env={"AGENTRT_POLICY_DIR": ""})
    payload = json.loads(denied.stdout)
    assert (denied.returncode, payload["status"]) == (1, "denied")
    assert payload["decision"]["rule_ids"] == ["default-deny"]
    missing = agentrt(*call, *gate, env={"AGENTRT_POLICY_DIR": str(tmp_path / "gone")})
    assert_refused(missing, 2, f"policy directory {tmp_path / 'gone'} does not exist")
    opted_out = agentrt(*call, *gate, "--policy", "none")
    assert json.loads(opted_out.stdout)["status"] == "ok"


def test_a_broken_policy_directory_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("apiVersion: agentrt/v1\nkind: ToolPolicy\nrules: [\n")
    result = agentrt(
        "call", "--module", "tools", "--tool", "calculate", "--args", '{"expression": "1"}',
        "--policy", str(tmp_path), "--sandbox", "inprocess",
    )  # fmt: skip
    assert result.returncode == 2
    assert "refusing to load policies" in result.stderr
    assert result.stdout == ""


def test_bench_gate_json_has_the_documented_keys() -> None:
    result = agentrt(
        "bench", "gate", "--runs", "10", "20", "--iterations", "300", "--policy",
        str(POLICY_ROOT), "--audit", "--json",
    )  # fmt: skip
    payload = json.loads(result.stdout)
    for key in (
        "gate_p50_us",
        "gate_p95_us",
        "gate_vs_json_loads",
        "loop_lag_p99_ms",
        "loop_lag_p99_ms_without_gc_freeze",
        "runs",
        "errors",
    ):
        assert key in payload, key
    assert payload["runs"] == 10 and payload["errors"] == 0
    # every --runs value has its own lag figures, with and without gc.freeze()
    assert [lag["runs"] for lag in payload["lag_by_runs"].values()] == [10, 20]
    for runs in (10, 20):
        assert payload[f"loop_lag_p99_ms_{runs}_runs"] >= 0
        assert payload[f"loop_lag_p99_ms_{runs}_runs_without_gc_freeze"] >= 0
    assert payload["stages"] == ["parse", "validate", "policy", "audit"]
    # exit code says whether the floors were met; the figures are the benchmark's business
    assert result.returncode == (0 if payload["meets_floors"] else 1)


# -- refusals: one sentence on stderr and a documented exit code, never a traceback


def assert_refused(result: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr


GREET_NEEDS_APPROVAL = """\
apiVersion: agentrt/v1
kind: ToolPolicy
metadata: {id: approve-greet}
rules:
  - {id: approve-greet, effect: require_approval, tools: [greet]}
"""


def test_call_resume_of_an_undecided_approval_is_refused(tool_file: Path, tmp_path: Path) -> None:
    (tmp_path / "policy").mkdir()
    (tmp_path / "policy" / "p.yaml").write_text(GREET_NEEDS_APPROVAL)
    gate = [
        "--module", str(tool_file), "--policy", str(tmp_path / "policy"),
        "--approvals-db", str(tmp_path / "approvals.db"), "--sandbox", "inprocess",
        "--audit-log", "none",
    ]  # fmt: skip
    waiting = agentrt("call", *gate, "--tool", "greet", "--args", '{"name": "ada"}')
    approval_id = json.loads(waiting.stdout)["approval_id"]
    pending = agentrt("call", *gate, "--resume", approval_id)
    assert_refused(pending, 2, f"approval {approval_id} is still pending")
    assert pending.stdout == ""  # nothing ran, nothing to report
    assert_refused(agentrt("call", *gate, "--resume", "nope"), 2, "no approval 'nope'")


def test_run_resume_without_a_policy_is_refused(tool_file: Path, tmp_path: Path) -> None:
    model = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--sandbox", "inprocess"]
    result = agentrt(
        "run", "--module", str(tool_file), *model, "--audit-log", "none", "--resume", "r1",
        "--policy", "none",
    )  # fmt: skip
    assert_refused(result, 2, "--resume needs a policy (not --policy none)")
    (tmp_path / "policy").mkdir()
    (tmp_path / "policy" / "p.yaml").write_text(GREET_NEEDS_APPROVAL)
    unknown = agentrt(
        "run", "--module", str(tool_file), *model, "--audit-log", "none", "--resume", "r1",
        "--policy", str(tmp_path / "policy"), "--approvals-db", str(tmp_path / "approvals.db"),
    )  # fmt: skip
    assert_refused(unknown, 2, "cannot resume: no paused run 'r1'")


def test_run_with_a_tool_choice_naming_no_tool_is_refused(tool_file: Path) -> None:
    result = agentrt(
        "run", "--module", str(tool_file), "--base-url", "http://127.0.0.1:9/v1",
        "--model", "m", "--sandbox", "inprocess", "--audit-log", "none",
        "--tool-choice", "nope", "hi",
    )  # fmt: skip
    assert_refused(result, 2, "--tool-choice 'nope' is not one of this agent's tools (greet)")


def test_run_with_a_tool_choice_naming_a_tool_forces_it(tool_file: Path) -> None:
    replies = [ScriptedReply.call("greet", {"name": "bob"}), ScriptedReply.message("done")]
    with ScriptedServer(replies) as server:
        result = agentrt(
            "run", "--module", str(tool_file), "--base-url", server.base_url,
            "--model", server.model, "--sandbox", "inprocess", "--audit-log", "none",
            "--policy", "none", "--tool-choice", "greet", "--json", "greet bob",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert server.requests[0]["tool_choice"] == {"type": "function", "function": {"name": "greet"}}


def test_eval_with_a_missing_adapter_is_refused(tmp_path: Path) -> None:
    data = ROOT / "bench" / "finetune" / "heldout_builtin.jsonl"
    missing = tmp_path / "MISSING"
    result = agentrt("eval", "--data", str(data), "--limit", "1", "--local", f"tuned={missing}")
    assert_refused(result, 2, f"--local tuned={missing}: no adapter at {missing}")
    (tmp_path / "empty").mkdir()
    empty = agentrt("eval", "--data", str(data), "--limit", "1", "--local", f"t={tmp_path}/empty")
    assert_refused(empty, 2, "holds no adapter.gguf")


# -- the demo


def test_the_demo_leaves_no_workspace_behind(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {"TMPDIR": str(temp)}
    audit = tmp_path / "audit.jsonl"
    done = agentrt(
        "demo", "--scripted", "--sandbox", "inprocess", "--audit-log", str(audit), "--json",
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["audit_ok"] and all(summary["shown"].values())
    notes = next(a for a in summary["answers"] if "notes.txt" in a["request"])
    assert "Demo notes" in notes["answer"]  # the run read its workspace ...
    assert not list(temp.glob("agentrt-demo-workspace-*"))  # ... and removed it
    refused = agentrt(
        "demo", "--scripted", "--sandbox", "inprocess", "--policy", str(tmp_path / "nope"),
        env=env,
    )  # fmt: skip
    assert_refused(refused, 2, "does not exist")
    assert not list(temp.glob("agentrt-demo-workspace-*"))
