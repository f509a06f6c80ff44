"""Tiny base models and LoRA adapters on disk, for deploy tests (no torch needed).

The base is a two-layer Llama-shaped model (hidden 8, vocabulary 32) written
as a Hugging Face directory; adapters are peft-shaped directories. Tensors are
zeros: only names and shapes matter to the checks.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

HIDDEN, FFN, VOCAB, LAYERS = 8, 16, 32, 2
BASE_NAME = "bundled:tiny-llama"
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")


def write_safetensors(path: Path, shapes: Mapping[str, tuple[int, ...]]) -> Path:
    """A valid safetensors file of float32 zeros with these tensors."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        size = 4
        for n in shape:
            size *= n
        header[name] = {
            "dtype": "F32",
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(offset))
    return path


def _tokenizer(folder: Path, extra: Iterable[str] = ()) -> None:
    vocab = {f"tok{i}": i for i in range(VOCAB - 2)}
    added = [
        {"id": VOCAB - 2, "content": "<|im_start|>"},
        {"id": VOCAB - 1, "content": "<|im_end|>"},
    ]
    added += [{"id": VOCAB + i, "content": token} for i, token in enumerate(extra)]
    (folder / "tokenizer.json").write_text(
        json.dumps({"model": {"type": "BPE", "vocab": vocab}, "added_tokens": added})
    )


def base_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (VOCAB, HIDDEN)}
    for layer in range(LAYERS):
        prefix = f"model.layers.{layer}"
        for name in ATTENTION:
            shapes[f"{prefix}.self_attn.{name}.weight"] = (HIDDEN, HIDDEN)
        shapes[f"{prefix}.mlp.gate_proj.weight"] = (FFN, HIDDEN)
        shapes[f"{prefix}.mlp.up_proj.weight"] = (FFN, HIDDEN)
        shapes[f"{prefix}.mlp.down_proj.weight"] = (HIDDEN, FFN)
        shapes[f"{prefix}.input_layernorm.weight"] = (HIDDEN,)
    shapes["model.norm.weight"] = (HIDDEN,)
    return shapes


def make_base(folder: Path, *, name: str = BASE_NAME) -> Path:
    """A base model directory as `agentrt finetune --save-base` writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_type": "llama", "vocab_size": VOCAB, "hidden_size": HIDDEN,
              "num_hidden_layers": LAYERS, "tie_word_embeddings": True}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    write_safetensors(folder / "model.safetensors", base_shapes())
    _tokenizer(folder)
    (folder / "agentrt_base.json").write_text(json.dumps({"base": name}))
    return folder


def make_adapter(
    folder: Path,
    *,
    rank: int = 4,
    base: str | None = BASE_NAME,
    modules: Iterable[str] = ("q_proj", "v_proj"),
    prefix: str = "base_model.model.model.layers",
    hidden: int = HIDDEN,
    config: Mapping[str, Any] | None = None,
    extra_tensors: Mapping[str, tuple[int, ...]] | None = None,
    added_tokens: Iterable[str] = (),
    seed: str = "",
) -> Path:
    """A peft LoRA adapter directory; `seed` changes its bytes (a new version)."""
    folder.mkdir(parents=True, exist_ok=True)
    modules = tuple(modules)
    settings = {"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank,
                "target_modules": list(modules), "base_model_name_or_path": base,
                "modules_to_save": None, "seed": seed, **dict(config or {})}  # fmt: skip
    (folder / "adapter_config.json").write_text(json.dumps(settings))
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(LAYERS):
        for module in modules:
            key = f"{prefix}.{layer}.self_attn.{module}"
            shapes[f"{key}.lora_A.weight"] = (rank, hidden)
            shapes[f"{key}.lora_B.weight"] = (hidden, rank)
    shapes.update(extra_tensors or {})
    write_safetensors(folder / "adapter_model.safetensors", shapes)
    _tokenizer(folder, added_tokens)
    return folder
