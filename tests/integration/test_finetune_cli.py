"""`agentrt finetune` end to end on the bundled model: what a run starts from and records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import tools
from runtime.cli import main
from runtime.finetune.dataset_format import write_jsonl
from runtime.finetune.synth import SynthConfig, Synthesizer
from runtime.model.adapters import general_adapter_dir, similar_requests_of
from runtime.tools import ToolRegistry


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    registry = ToolRegistry.from_module(tools)
    examples = Synthesizer(registry, None, SynthConfig(per_tool=3, seed=0)).generate()
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    write_jsonl(path, examples)
    return path


def _finetune(
    data: Path, out: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> dict[str, Any]:
    code = main(["finetune", str(data), "--out", str(out), "--max-steps", "1", "--no-gguf",
                 "--quiet", *extra])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary: dict[str, Any] = json.loads(captured.out.strip().splitlines()[-1])
    return summary


def test_a_run_on_the_bundled_model_continues_the_general_adapter(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = _finetune(data, tmp_path / "a", capsys)
    assert summary["init_adapter"] == str(general_adapter_dir())
    manifest = json.loads((tmp_path / "a" / "agentrt_adapter.json").read_text())
    assert manifest["init_adapter"] == str(general_adapter_dir())
    # served with the worked requests it learned with, as the general adapter is
    assert manifest["similar_requests"] == similar_requests_of(general_adapter_dir()) > 0
    log = json.loads((tmp_path / "a" / "train_log.json").read_text())
    assert log["config"]["learning_rate"] == 5e-4
    assert log["config"]["time_budget_s"] == 600  # ten minutes unless told otherwise
    # the general adapter's rank, kept
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    general = json.loads((general_adapter_dir() / "adapter_config.json").read_text())
    assert config["r"] == general["r"]


def test_none_trains_from_the_bare_model(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = _finetune(
        data, tmp_path / "b", capsys, "--init-adapter", "none", "--rank", "4", "--time-budget", "0"
    )
    assert summary["init_adapter"] is None
    manifest = json.loads((tmp_path / "b" / "agentrt_adapter.json").read_text())
    assert manifest["init_adapter"] is None and manifest["similar_requests"] == 0
    assert (
        json.loads((tmp_path / "b" / "train_log.json").read_text())["config"]["learning_rate"]
        == 1e-3
    )
    assert json.loads((tmp_path / "b" / "adapter_config.json").read_text())["r"] == 4
    assert (
        json.loads((tmp_path / "b" / "train_log.json").read_text())["config"]["time_budget_s"]
        is None
    )  # 0: no limit


def test_a_missing_init_adapter_or_a_negative_budget_is_one_clear_line(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["finetune", str(data), "--out", str(tmp_path / "c"),
                 "--init-adapter", str(tmp_path / "nope")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "not an adapter directory" in err
    code = main(["finetune", str(data), "--out", str(tmp_path / "c"), "--time-budget", "-5"])
    assert code == 2 and "--time-budget must be 0" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_a_run_says_how_many_examples_it_skipped_as_too_long(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    long = json.loads(json.dumps(examples[0]))
    long["messages"][0]["content"] = "please " * 5000  # far beyond 4096 tokens
    mixed = tmp_path / "mixed.jsonl"
    write_jsonl(mixed, [*examples, long])
    code = main(["finetune", str(mixed), "--out", str(tmp_path / "d"), "--max-steps", "1",
                 "--no-gguf", "--quiet", "--init-adapter", "none", "--rank", "4"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"skipped 1 of {len(examples) + 1} examples longer than 4096 tokens" in err
    log = json.loads((tmp_path / "d" / "train_log.json").read_text())
    assert log["config"]["max_length"] == 4096 and log["result"]["skipped"] == 1
