"""Export: audit records round-trip into examples; redacted and failed runs are dropped."""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any

from runtime import tool
from runtime.audit.chain import HashChainSink
from runtime.finetune.dataset_format import validate_example
from runtime.finetune.export import (
    OUTPUT_FIELD,
    PROMPT_FIELD,
    TURN_FIELD,
    export_paths,
    is_redacted,
)
from runtime.tools import ToolRegistry


def _module() -> types.ModuleType:
    module = types.ModuleType("export_tools")

    @tool
    def calculate(expression: str) -> float:
        """Evaluate an arithmetic expression.

        Args:
            expression: The expression.
        """
        return 0.0

    @tool
    def login(user: str, password: str) -> str:
        """Log a user in.

        Args:
            user: User name.
            password: The password.
        """
        return "ok"

    module.calculate = calculate  # type: ignore[attr-defined]
    module.login = login  # type: ignore[attr-defined]
    return module


REGISTRY = ToolRegistry.from_module(_module())


def _run(
    sink: HashChainSink,
    run_id: str,
    prompt: str | None,
    calls: list[tuple[int, str, dict[str, Any], Any, str]],
    output: str | None,
) -> None:
    """Write the records the agent loop writes for one run (plus the fields export asks for)."""
    base = {"agentrt.run_id": run_id, "gen_ai.conversation.id": run_id, "agentrt.tenant": "acme"}
    started = {**base, "gen_ai.request.model": "smol"}
    if prompt is not None:
        started[PROMPT_FIELD] = prompt
    sink.write("run.started", started)
    for index, (turn, name, arguments, result, status) in enumerate(calls):
        call = {**base, "gen_ai.tool.name": name, "gen_ai.tool.call.id": f"{run_id}-{index}"}
        sink.write(
            "tool.proposed",
            {**call, TURN_FIELD: turn, "agentrt.tool.arguments_raw": json.dumps(arguments)},
        )
        sink.write("tool.validated", {**call, "agentrt.tool.arguments": arguments})
        sink.write(
            "policy.decided", {**call, "agentrt.decision": "allow", "agentrt.rule_ids": ["r1"]}
        )
        sink.write("execution.started", {**call, "agentrt.sandbox.mode": "docker"})
        sink.write(
            "execution.finished",
            {
                **call,
                "agentrt.status": status,
                "agentrt.tool.result": result,
                "agentrt.duration_ms": 3.2,
            },
        )
    finished = {**base, "agentrt.status": "completed"}
    if output is not None:
        finished[OUTPUT_FIELD] = output
    sink.write("run.finished", finished)


def _write_logs(tmp_path: Path) -> tuple[Path, Path]:
    with_results = tmp_path / "a" / "audit.jsonl"
    sink = HashChainSink(with_results, store_results=True, hmac_key=b"k" * 32, fsync="off")
    _run(
        sink,
        "r-single",
        "What is 2+2?",
        [(1, "calculate", {"expression": "2+2"}, 4, "ok")],
        "2+2 is 4.",
    )
    _run(
        sink,
        "r-parallel",
        "Compute 1+1 and 3*3",
        [
            (1, "calculate", {"expression": "1+1"}, 2, "ok"),
            (1, "calculate", {"expression": "3*3"}, 9, "ok"),
        ],
        "2 and 9.",
    )
    _run(
        sink,
        "r-secret",
        "Log in as bob",
        [(1, "login", {"user": "bob", "password": "hunter2"}, "ok", "ok")],
        "Done.",
    )
    _run(
        sink,
        "r-failed",
        "What is 1/0?",
        [(1, "calculate", {"expression": "1/0"}, None, "tool_error")],
        "Error.",
    )
    _run(sink, "r-noprompt", None, [(1, "calculate", {"expression": "5*5"}, 25, "ok")], "25")
    _run(sink, "r-chat", "Hello!", [], "Hi there!")
    _run(
        sink,
        "r-secret-text",
        "My password=hunter2, what is 1+2?",
        [(1, "calculate", {"expression": "1+2"}, 3, "ok")],
        "3",
    )
    sink.close()
    without_results = tmp_path / "b" / "audit.jsonl"
    sink = HashChainSink(without_results, hmac_key=b"k" * 32, fsync="off")
    _run(
        sink,
        "r-noresult",
        "Two steps: 7*6 then add 1",
        [
            (1, "calculate", {"expression": "7*6"}, 42, "ok"),
            (2, "calculate", {"expression": "42+1"}, 43, "ok"),
        ],
        "43",
    )
    sink.close()
    return with_results, without_results


def test_round_trip_keeps_requests_calls_results_and_answers(tmp_path: Path) -> None:
    first, second = _write_logs(tmp_path)
    examples, stats = export_paths([first, second], REGISTRY)
    by_request = {e["messages"][0]["content"]: e for e in examples}
    assert set(by_request) == {"What is 2+2?", "Compute 1+1 and 3*3", "Two steps: 7*6 then add 1"}
    single = by_request["What is 2+2?"]
    assert single["messages"] == [
        {"role": "user", "content": "What is 2+2?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "calculate", "arguments": '{"expression": "2+2"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_0", "content": "4"},
        {"role": "assistant", "content": "2+2 is 4."},
    ]
    assert single["tools"] == REGISTRY.openai_schemas()
    assert single["metadata"] == {"kind": "trajectory", "source": "audit"}
    parallel = by_request["Compute 1+1 and 3*3"]["messages"]
    assert [c["function"]["arguments"] for c in parallel[1]["tool_calls"]] == [
        '{"expression": "1+1"}',
        '{"expression": "3*3"}',
    ]
    assert [m["role"] for m in parallel] == ["user", "assistant", "tool", "tool", "assistant"]
    # results not stored: only the first turn's calls are a faithful target
    partial = by_request["Two steps: 7*6 then add 1"]["messages"]
    assert [m["role"] for m in partial] == ["user", "assistant"]
    for example in examples:
        validate_example(example)
        text = json.dumps(example)
        for leaked in (
            "acme",
            "r-single",
            "docker",
            '"r1"',
            "duration_ms",
            "prev_hash",
            '"ts"',
            "2026-",
        ):
            assert leaked not in text  # no ids, tenants, timestamps, sandbox or policy data
    assert stats.runs == 8 and stats.exported == 3
    assert stats.dropped == {"redacted": 2, "call_failed": 1, "no_prompt": 1, "no_call": 1}


def test_redacted_values_are_never_exported(tmp_path: Path) -> None:
    first, _ = _write_logs(tmp_path)
    records = [json.loads(line) for line in first.read_text().splitlines()]
    secret = [
        r
        for r in records
        if r["fields"].get("gen_ai.tool.name") == "login" and r["event"] == "tool.validated"
    ]
    assert secret[0]["fields"]["agentrt.tool.arguments"]["password"] == {"redacted": "key"}
    examples, _ = export_paths([first], REGISTRY)
    text = json.dumps(examples)
    assert "redacted" not in text and "REDACTED" not in text and "bob" not in text


def test_no_call_runs_are_opt_in(tmp_path: Path) -> None:
    first, _ = _write_logs(tmp_path)
    examples, stats = export_paths([first], REGISTRY, include_no_call=True)
    chat = [e for e in examples if e["messages"][0]["content"] == "Hello!"]
    assert chat and chat[0]["messages"][1] == {"role": "assistant", "content": "Hi there!"}
    assert chat[0]["metadata"]["kind"] == "no_tool"
    assert "no_call" not in stats.dropped


def test_opentelemetry_message_fields_are_read(tmp_path: Path) -> None:
    log = tmp_path / "otel.jsonl"
    sink = HashChainSink(log, store_results=True, hmac_key=b"k" * 32, fsync="off")
    sink.write(
        "run.started",
        {
            "agentrt.run_id": "x",
            "gen_ai.input.messages": [
                {"role": "user", "parts": [{"type": "text", "content": "Hi"}]}
            ],
        },
    )
    sink.write(
        "run.finished",
        {
            "agentrt.run_id": "x",
            "agentrt.status": "completed",
            "gen_ai.output.messages": [
                {"role": "assistant", "parts": [{"type": "text", "content": "Hello"}]}
            ],
        },
    )
    sink.close()
    examples, _ = export_paths([log], REGISTRY, include_no_call=True)
    assert examples[0]["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
    ]


def test_is_redacted_markers() -> None:
    assert is_redacted({"a": {"redacted": "size", "len": 9}})
    assert is_redacted(["x", "token [REDACTED:api_key]"])
    assert is_redacted("long…[truncated, 9000 chars]")
    assert not is_redacted({"expression": "2+2", "note": "redacted is just a word"})
