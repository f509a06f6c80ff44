"""The optional teacher: paraphrases kept only when every value survives; failures fall back."""

from __future__ import annotations

import copy
import json
from typing import Any

from runtime.finetune.synth import SynthConfig, Synthesizer
from runtime.finetune.teacher import Teacher, paraphrase_examples, values_kept
from runtime.model.local_server import free_port
from runtime.testing import ScriptedReply, ScriptedServer
from runtime.tools import ToolRegistry
from tests.unit.test_finetune_natural import convert, get_order, remind


def _m(example: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation without the optional leading system prompt."""
    messages = list(example["messages"])
    return messages[1:] if messages and messages[0]["role"] == "system" else messages


def _examples() -> list[dict[str, Any]]:
    registry = ToolRegistry([convert, remind, get_order])
    return Synthesizer(registry, None, SynthConfig(per_tool=4, seed=3)).generate()


def _request(body: dict[str, Any]) -> str:
    return str(body["messages"][-1]["content"])


def test_values_kept_checks_strings_numbers_and_digits() -> None:
    calls = [{"order_id": "SO-10482", "minutes": 20}]
    original = "where is order SO-10482? remind me in 20 minutes"
    assert values_kept(original, "In 20 minutes, remind me about SO-10482", calls)
    assert not values_kept(original, "remind me about SO-10482 later", calls)
    assert not values_kept(original, "in 20 minutes remind me about my order", calls)
    assert values_kept("in twenty minutes", "in twenty minutes please", [{"minutes": 20}])


def test_a_paraphrase_that_keeps_the_values_replaces_the_request() -> None:
    def polite(body: dict[str, Any]) -> ScriptedReply:
        return ScriptedReply.message(f"Hello! Would you kindly do this for me: {_request(body)}")

    examples = _examples()
    before = copy.deepcopy(examples)
    with ScriptedServer(handler=polite, model="teacher") as server:
        report = paraphrase_examples(
            examples, Teacher(server.base_url, "teacher"), share=1.0, seed=0
        )
        sent = server.requests
    assert report.kept == report.asked == len(examples)
    assert sent[0]["messages"][0]["role"] == "system"
    for old, new in zip(before, examples, strict=True):
        assert _m(new)[0]["content"].startswith("Hello! Would you kindly")
        assert _m(new)[1:] == _m(old)[1:]  # the call never changes


def test_a_paraphrase_that_loses_a_value_or_brings_markup_is_rejected() -> None:
    replies = iter(["please help me with that thing", '<tool_call>{"name": "x"}</tool_call>', ""])

    def lossy(body: dict[str, Any]) -> ScriptedReply:
        return ScriptedReply.message(next(replies, "ok"))

    examples = [e for e in _examples() if e["metadata"]["kind"] == "single"][:3]
    before = copy.deepcopy(examples)
    with ScriptedServer(handler=lossy, model="teacher") as server:
        report = paraphrase_examples(examples, Teacher(server.base_url, "teacher"), share=1.0)
    assert report.kept == 0 and sum(report.rejected.values()) == 3
    assert examples == before


def test_a_teacher_that_is_down_or_sends_junk_leaves_the_dataset_whole() -> None:
    examples = _examples()
    before = copy.deepcopy(examples)
    dead = Teacher(f"http://127.0.0.1:{free_port()}/v1", "teacher", timeout_s=2)
    report = paraphrase_examples(examples, dead, share=1.0, max_failures=3)
    assert report.gave_up and report.errors == 3 and report.kept == 0
    assert json.dumps(examples) == json.dumps(before)

    junk = ScriptedReply.captured(status=200, body={"unexpected": "html"})
    with ScriptedServer([junk] * 3, model="teacher") as server:
        report = paraphrase_examples(
            examples, Teacher(server.base_url, "teacher"), share=1.0, max_failures=3
        )
    assert report.gave_up and report.kept == 0
    assert json.dumps(examples) == json.dumps(before)
