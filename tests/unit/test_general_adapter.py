"""The shipped general adapter: files match the manifest, it is small, it loads."""

from __future__ import annotations

import hashlib
import json

import pytest

from runtime.finetune.adapter_export import SHIPPED_FILES
from runtime.model.adapters import general_adapter_dir, general_adapter_gguf, manifest

MAX_BYTES = 20 * 1024 * 1024


def test_manifest_matches_the_files() -> None:
    body = manifest()
    directory = general_adapter_dir()
    assert set(body["files"]) == set(SHIPPED_FILES)
    for name, facts in body["files"].items():
        data = (directory / name).read_bytes()
        assert len(data) == facts["bytes"], name
        assert hashlib.sha256(data).hexdigest() == facts["sha256"], name
    assert sum(f["bytes"] for f in body["files"].values()) <= MAX_BYTES
    # what it takes to rebuild it
    assert body["data"]["command"].startswith("agentrt dataset synth --general")
    assert len(body["data"]["sha256"]) == 64 and body["data"]["examples"] > 1000
    assert body["train"]["command"].startswith("agentrt finetune")
    assert isinstance(body["seed"], int)
    assert body["rebuild"] == "bench/finetune/build_general_adapter.sh"
    assert general_adapter_gguf(verify=True).name == "adapter.gguf"


def test_adapter_config_is_what_vllm_needs() -> None:
    config = json.loads((general_adapter_dir() / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    assert config["r"] <= 16  # vLLM's default --max-lora-rank
    assert not config.get("modules_to_save")  # vLLM does not support them


def test_gguf_is_a_lora_adapter_in_half_precision() -> None:
    gguf = pytest.importorskip("gguf")

    reader = gguf.GGUFReader(str(general_adapter_gguf()))
    fields = {name: field for name, field in reader.fields.items()}
    kind = fields["adapter.type"]
    assert bytes(kind.parts[kind.data[0]]).decode() == "lora"
    assert reader.tensors and all(
        t.tensor_type == gguf.GGMLQuantizationType.F16 for t in reader.tensors
    )
    assert any(t.name.endswith(".lora_a") for t in reader.tensors)
