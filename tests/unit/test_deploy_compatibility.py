"""Adapters that cannot work are refused before the server sees them, each with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.deploy.checkpoint import AdapterDir, BaseModelDir, CheckpointError
from runtime.deploy.compatibility import check_adapter, same_model_name
from tests.adapter_fixtures import make_adapter, make_base, write_safetensors


def _check(adapter: Path, base: Path, base_names: tuple[str, ...] = ()) -> list[str]:
    refusals = check_adapter(
        AdapterDir.read(adapter), BaseModelDir.read(base), max_lora_rank=16, base_names=base_names
    )
    return [r.code for r in refusals]


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return make_base(tmp_path / "base")


def test_a_good_adapter_passes(tmp_path: Path, base: Path) -> None:
    assert _check(make_adapter(tmp_path / "a"), base) == []


def test_module_names_that_match_nothing_are_refused(tmp_path: Path, base: Path) -> None:
    # Trained on a model whose layers live elsewhere (vLLM #34186: served silently as the base).
    adapter = make_adapter(tmp_path / "a", prefix="base_model.model.language_model.layers")
    refusals = check_adapter(AdapterDir.read(adapter), BaseModelDir.read(base), max_lora_rank=16)
    assert [r.code for r in refusals] == ["modules_unmatched"]
    assert "4 of 4 adapted modules match nothing" in refusals[0].message
    assert "#34186" in refusals[0].message


def test_rank_above_the_servers_limit(tmp_path: Path, base: Path) -> None:
    adapter = AdapterDir.read(make_adapter(tmp_path / "a", rank=32))
    refusals = check_adapter(adapter, BaseModelDir.read(base), max_lora_rank=16)
    assert [r.code for r in refusals] == ["rank_too_high"]
    assert "--max-lora-rank" in refusals[0].message
    assert check_adapter(adapter, BaseModelDir.read(base), max_lora_rank=32) == []


def test_rank_pattern_counts(tmp_path: Path, base: Path) -> None:
    adapter = make_adapter(tmp_path / "a", config={"rank_pattern": {"q_proj": 64}})
    assert _check(adapter, base) == ["rank_too_high"]


def test_modules_to_save_in_config_and_in_tensors(tmp_path: Path, base: Path) -> None:
    in_config = make_adapter(tmp_path / "a", config={"modules_to_save": ["lm_head"]})
    assert _check(in_config, base) == ["modules_to_save"]
    in_tensors = make_adapter(
        tmp_path / "b", extra_tensors={"base_model.model.lm_head.weight": (32, 8)}
    )
    assert _check(in_tensors, base) == ["modules_to_save"]


def test_added_tokens_are_refused(tmp_path: Path, base: Path) -> None:
    adapter = make_adapter(tmp_path / "a", added_tokens=["<tool_call>"])
    refusals = check_adapter(AdapterDir.read(adapter), BaseModelDir.read(base), max_lora_rank=16)
    assert [r.code for r in refusals] == ["added_tokens"]
    assert "'<tool_call>'" in refusals[0].message
    trained_rows = make_adapter(tmp_path / "b", config={"trainable_token_indices": [3, 4]})
    assert _check(trained_rows, base) == ["added_tokens"]


def test_base_named_in_adapter_config_must_be_the_served_one(tmp_path: Path, base: Path) -> None:
    adapter = make_adapter(tmp_path / "a", base="meta-llama/Llama-3.1-8B-Instruct")
    assert _check(adapter, base) == ["base_mismatch"]
    assert _check(adapter, base, base_names=("/models/meta-llama/Llama-3.1-8B-Instruct",)) == []
    assert _check(make_adapter(tmp_path / "b", base=None), base) == []  # names none: shapes decide


def test_shapes_from_another_model_are_a_base_mismatch(tmp_path: Path, base: Path) -> None:
    adapter = make_adapter(tmp_path / "a", hidden=16)
    refusals = check_adapter(AdapterDir.read(adapter), BaseModelDir.read(base), max_lora_rank=16)
    assert [r.code for r in refusals] == ["base_mismatch"]
    assert "do not fit the base's weight shapes" in refusals[0].message


def test_no_lora_tensors_and_not_lora(tmp_path: Path, base: Path) -> None:
    empty = make_adapter(tmp_path / "a", modules=())
    assert _check(empty, base) == ["no_lora_weights"]
    ia3 = make_adapter(tmp_path / "b", config={"peft_type": "IA3"})
    assert _check(ia3, base) == ["unsupported"]
    dora = make_adapter(tmp_path / "c", config={"use_dora": True})
    assert _check(dora, base) == ["unsupported"]


def test_several_problems_are_all_reported(tmp_path: Path, base: Path) -> None:
    adapter = make_adapter(
        tmp_path / "a", rank=64, base="other", config={"modules_to_save": ["embed_tokens"]}
    )
    assert sorted(_check(adapter, base)) == ["base_mismatch", "modules_to_save", "rank_too_high"]


def test_sharded_base_and_digest(tmp_path: Path) -> None:
    folder = make_base(tmp_path / "base")
    (folder / "model.safetensors").unlink()
    write_safetensors(
        folder / "part1.safetensors", {"model.layers.0.self_attn.q_proj.weight": (8, 8)}
    )
    write_safetensors(
        folder / "part2.safetensors", {"model.layers.1.self_attn.q_proj.weight": (8, 8)}
    )
    index = {"weight_map": {"model.layers.0.self_attn.q_proj.weight": "part1.safetensors",
                            "model.layers.1.self_attn.q_proj.weight": "part2.safetensors"}}  # fmt: skip
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    adapter = AdapterDir.read(make_adapter(tmp_path / "a", modules=("q_proj",)))
    assert check_adapter(adapter, BaseModelDir.read(folder), max_lora_rank=16) == []
    again = AdapterDir.read(make_adapter(tmp_path / "b", modules=("q_proj",)))
    assert again.digest == adapter.digest  # same bytes, same identity, wherever they are
    changed = AdapterDir.read(make_adapter(tmp_path / "c", modules=("q_proj",), seed="2"))
    assert changed.digest != adapter.digest


def test_unreadable_directories_say_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"holds no adapter_config\.json"):
        AdapterDir.read(tmp_path)
    with pytest.raises(CheckpointError, match=r"holds no config\.json"):
        BaseModelDir.read(tmp_path)
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        AdapterDir.read(tmp_path)


def test_names() -> None:
    assert same_model_name("HuggingFaceTB/SmolLM2-135M", "/models/HuggingFaceTB/SmolLM2-135M/")
    assert not same_model_name("SmolLM2-135M", "SmolLM2-1.7B")
    assert not same_model_name("", "x")


def test_the_shipped_general_adapter_reads_and_fits_its_own_shapes() -> None:
    from runtime.model.adapters import general_adapter_dir

    adapter = AdapterDir.read(general_adapter_dir())
    assert adapter.base_name == "bundled:SmolLM2-135M-Instruct.Q4_1.gguf"
    assert len(adapter.shapes) == 30 * 7 * 2  # 30 layers, 7 modules, A and B
