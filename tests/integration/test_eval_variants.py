"""`agentrt eval` variants over the scripted server: each lever changes what is sent."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from runtime.finetune.eval_runner import RemoteTarget
from runtime.finetune.eval_variants import compare_variants, parse_variant
from runtime.finetune.evaluate import EvalItem, ExpectedCall
from runtime.prompting import PromptError
from runtime.testing import ScriptedReply, ScriptedServer

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look up a city's timezone.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }
]
CITIES = ["Paris", "Oslo", "Lima", "Pune"]
ITEMS = [
    EvalItem(f"c{i}", [{"role": "user", "content": f"Timezone of {city}?"}], TOOLS,
             [ExpectedCall.exact("lookup", {"city": city})], "single")
    for i, city in enumerate(CITIES)
] + [
    EvalItem("n0", [{"role": "user", "content": "Write a haiku."}], TOOLS, [], "no_tool"),
    EvalItem("n1", [{"role": "user", "content": "Say hi."}], TOOLS, [], "no_tool"),
]  # fmt: skip


def model(body: dict[str, Any]) -> ScriptedReply:
    """Calls correctly only when shown an example call; reasons when asked; abstains otherwise."""
    messages = body["messages"]
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    request = messages[-1]["content"]
    match = re.search(r"Timezone of (\w+)", request)
    saw_example = any(m.get("tool_calls") or "<tool_call>" in (m.get("content") or "")
                      for m in messages[:-1] if m["role"] == "assistant")  # fmt: skip
    think = "<think>" in system
    if not match or not saw_example:
        text = "I can only talk." if not think else "<think>no tool fits</think>Hello."
        return ScriptedReply.message(text)
    call = json.dumps({"name": "lookup", "arguments": {"city": match.group(1)}})
    prefix = f"<think>user wants {match.group(1)}</think>" if think else ""
    return ScriptedReply.message(f"{prefix}<tool_call>{call}</tool_call>")


def write_examples(path: Path) -> Path:
    example = {
        "messages": [
            {"role": "user", "content": "Timezone of Rome?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "lookup", "arguments": '{"city": "Rome"}'}}],
            },
            {"role": "tool", "content": "Europe/Rome"},
            {"role": "assistant", "content": "Europe/Rome."},
        ]
    }
    path.write_text(json.dumps(example) + "\n")
    return path


def test_variants_compare_levers_on_the_same_items(tmp_path: Path) -> None:
    examples = write_examples(tmp_path / "examples.jsonl")
    variants = [
        parse_variant("zero-shot"),
        parse_variant(f"few-shot:examples={examples}"),
        parse_variant(f"few-shot+think:examples={examples},think=1,preset=balanced"),
    ]
    with ScriptedServer(handler=model) as server:
        target = RemoteTarget("scripted", server.base_url, server.model)
        report = compare_variants([target], variants, ITEMS, max_tokens=32)
        sent = list(server.requests)
    models = report["models"]
    assert models["zero-shot"]["summary"]["full_call"] == 0.0
    assert models["few-shot"]["summary"]["full_call"] == 1.0
    assert models["few-shot+think"]["summary"]["full_call"] == 1.0
    assert all(m["summary"]["abstention"] == 1.0 for m in models.values())
    think_predictions = models["few-shot+think"]["predictions"]
    assert "user wants Paris" in think_predictions[0]["reasoning"]
    assert all("<think>" not in p["text"] for p in think_predictions)
    assert models["few-shot+think"]["variant"]["preset"] == "balanced"
    # balanced sampling reached the server, with a seed added for repeatability
    assert {(r["temperature"], r.get("seed")) for r in sent[-len(ITEMS) :]} == {(0.6, 0)}
    assert models["zero-shot"]["latency_s"]["p50"] is not None
    tests = {t["metric"]: t for t in report["comparisons"][0]["tests"]}
    assert tests["full_call"]["b_only"] == 4 and tests["full_call"]["a_only"] == 0
    table = report["table"].splitlines()
    assert len(table) == 5 and table[2].startswith("| zero-shot | scripted | zero-shot | 0.0 %")
    assert "few-shot, think-first, preset balanced" in table[4]


def test_variant_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not key=value"):
        parse_variant("x:colour=red")
    with pytest.raises(ValueError, match="unknown preset"):
        parse_variant("x:preset=fast")
    with pytest.raises(ValueError, match="use 1 or 0"):
        parse_variant("x:think=maybe")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "tool_calls": [{"function": {"name": "nope", "arguments": "{}"}}]},
        {"role": "tool", "content": "r"},
    ]}) + "\n")  # fmt: skip
    variant = parse_variant(f"x:examples={bad}")
    with pytest.raises(PromptError, match="unknown tool 'nope'"):
        variant.prompt.bind(TOOLS)


def test_eval_cli_rejects_unknown_target_before_serving(capsys: pytest.CaptureFixture[str]) -> None:
    from runtime.cli import main

    data = Path(__file__).parents[2] / "bench" / "finetune" / "heldout_builtin.jsonl"
    code = main(["eval", "--data", str(data), "--base-url", "http://127.0.0.1:9/v1",
                 "--model", "m", "--variant", "t:target=tuned"])  # fmt: skip
    assert code == 2
    assert "names target 'tuned'" in capsys.readouterr().err


def test_eval_cli_keeps_concurrency_requests_in_flight(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import asyncio

    from runtime.cli import main
    from runtime.model import client as model_client

    in_flight = peak = 0

    async def complete(self: Any, messages: Any, tools: Any, settings: Any) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return model_client.ModelTurn("hi", (), "stop", model_client.Usage(), "m")

    monkeypatch.setattr(model_client.OpenAICompatibleClient, "complete", complete)
    data = Path(__file__).parents[2] / "bench" / "finetune" / "heldout_builtin.jsonl"
    args = ["eval", "--data", str(data), "--limit", "24", "--base-url", "http://127.0.0.1:9/v1",
            "--model", "m", "--no-predictions", "--out", str(tmp_path / "r.json")]  # fmt: skip
    assert main([*args, "--concurrency", "6"]) == 0
    assert peak == 6
    peak = 0
    assert main(args) == 0
    assert peak == 1
