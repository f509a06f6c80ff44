"""Adapter export: safetensors for vLLM, GGUF for the llama.cpp server.

- `save_adapter` writes the peft adapter (`adapter_model.safetensors` +
  `adapter_config.json`, what `vllm serve --enable-lora --lora-modules
  NAME=DIR` loads), the tokenizer with the training chat template, the
  template itself (`chat_template.jinja`, for `--chat-template`) and a manifest.
- `export_gguf_lora` converts that adapter into a GGUF LoRA file that
  `agentrt serve-model --adapter FILE` (llama.cpp's `--lora`) loads on CPU. It
  writes what llama.cpp's `convert_lora_to_gguf.py` writes for Llama-family
  models (tensor names, the Q/K row permutation, `adapter.lora.alpha`) with the
  `gguf` package alone, so no llama.cpp checkout is needed.
- `export_base` saves the dequantised base model as a Hugging Face directory
  (safetensors, no GGUF `quantization_config`, which vLLM rejects), with
  `agentrt_base.json` naming it as its adapters name their base, so
  `agentrt adapter deploy` can tell it is theirs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runtime.finetune.chat_template import BOS_TOKEN, CHAT_TEMPLATE, EOS_TOKEN

__all__ = [
    "BASE_MANIFEST_FILE",
    "CHAT_TEMPLATE_FILE",
    "GGUF_ADAPTER_FILE",
    "MANIFEST_FILE",
    "AdapterExportError",
    "export_base",
    "export_gguf_lora",
    "save_adapter",
    "ship_adapter",
]

MANIFEST_FILE = "agentrt_adapter.json"
#: Next to an exported base: `{"base": NAME}`, NAME being what adapters trained on
#: it record as `base_model_name_or_path`.
BASE_MANIFEST_FILE = "agentrt_base.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
GGUF_ADAPTER_FILE = "adapter.gguf"

# Hugging Face Llama module -> llama.cpp tensor name (gguf.constants MODEL_TENSOR names).
_LLAMA_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_LORA_KEY = re.compile(
    r"^(?:base_model\.model\.)?(?:model\.)?layers\.(?P<layer>\d+)\.(?P<module>[a-z_]+\.[a-z_]+)"
    r"\.lora_(?P<part>[AB])(?:\.default)?\.weight$"
)


class AdapterExportError(RuntimeError):
    """The adapter cannot be exported in the asked-for form; the message says why."""


def save_adapter(
    peft_model: Any,
    tokenizer: Any,
    out_dir: Path,
    *,
    base: str,
    manifest: Mapping[str, Any] | None = None,
) -> Path:
    """Write the adapter, tokenizer, chat template and manifest into `out_dir`.

    Args:
        peft_model: The trained peft model.
        tokenizer: Its tokenizer (saved with the chat template set).
        out_dir: Created if missing.
        base: What the adapter was trained on (`bundled:...gguf`, a path).
        manifest: Extra facts to record (tools, training numbers).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for config in peft_model.peft_config.values():
        config.base_model_name_or_path = base
    peft_model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(out_dir))
    (out_dir / CHAT_TEMPLATE_FILE).write_text(CHAT_TEMPLATE, encoding="utf-8")
    _ensure_template_in_tokenizer_config(out_dir)
    body = {
        "format": "agentrt-lora/1",
        "base": base,
        "chat_template": CHAT_TEMPLATE_FILE,
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        **dict(manifest or {}),
    }
    (out_dir / MANIFEST_FILE).write_text(json.dumps(body, indent=2, default=str) + "\n")
    return out_dir


def _ensure_template_in_tokenizer_config(out_dir: Path) -> None:
    """Newer transformers keep the template only in `chat_template.jinja`; servers
    that read `tokenizer_config.json` (vLLM's fallback, llama.cpp tools) need it there."""
    path = out_dir / "tokenizer_config.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    data.setdefault("chat_template", CHAT_TEMPLATE)
    data.setdefault("bos_token", BOS_TOKEN)
    data.setdefault("eos_token", EOS_TOKEN)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _permute_rows(weights: Any, n_head: int) -> Any:
    """llama.cpp's Q/K row order (`LlamaModel.permute` in convert_hf_to_gguf.py)."""
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def export_gguf_lora(
    adapter_dir: Path,
    out_path: Path,
    *,
    base_config: Mapping[str, Any],
    dtype: str = "float32",
) -> Path:
    """Convert a peft LoRA adapter of a Llama-family model into a GGUF LoRA file.

    Args:
        adapter_dir: Holds `adapter_model.safetensors` and `adapter_config.json`.
        out_path: The `.gguf` file to write.
        base_config: The base model's config (`num_attention_heads`,
            `num_key_value_heads`, `model_type`).
        dtype: `float32`, or `float16` (half the size; what llama.cpp's own
            converter writes by default).

    Raises:
        AdapterExportError: Unsupported architecture or adapter layout.
    """
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    model_type = str(base_config.get("model_type", "llama"))
    if model_type not in ("llama", "mistral"):
        raise AdapterExportError(
            f"GGUF export supports Llama-family bases, not {model_type!r}; use llama.cpp's "
            "convert_lora_to_gguf.py for other architectures"
        )
    n_head = int(base_config["num_attention_heads"])
    n_kv = int(base_config.get("num_key_value_heads") or n_head)
    settings = json.loads((adapter_dir / "adapter_config.json").read_text())
    if settings.get("use_rslora") or settings.get("use_dora"):
        raise AdapterExportError("rsLoRA and DoRA adapters have no GGUF LoRA form")
    alpha = float(settings["lora_alpha"])
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    pairs: dict[str, dict[str, Any]] = {}
    for key, value in weights.items():
        match = _LORA_KEY.match(key)
        if match is None or match["module"] not in _LLAMA_NAMES:
            raise AdapterExportError(f"cannot map adapter tensor {key!r} to a llama.cpp tensor")
        name = f"blk.{match['layer']}.{_LLAMA_NAMES[match['module']]}.weight"
        pairs.setdefault(name, {})[match["part"]] = value.astype(
            np.float16 if dtype == "float16" else np.float32
        )
    writer = gguf.GGUFWriter(str(out_path), arch="llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    writer.add_string("general.name", str(settings.get("base_model_name_or_path", "adapter")))
    for name in sorted(pairs, key=_tensor_order):
        parts = pairs[name]
        if set(parts) != {"A", "B"}:
            raise AdapterExportError(f"{name}: lora_A or lora_B is missing")
        lora_a, lora_b = parts["A"], parts["B"]
        if ".attn_q." in name:
            lora_b = _permute_rows(lora_b, n_head)
        elif ".attn_k." in name:
            lora_b = _permute_rows(lora_b, n_kv)
        writer.add_tensor(f"{name}.lora_a", np.ascontiguousarray(lora_a))
        writer.add_tensor(f"{name}.lora_b", np.ascontiguousarray(lora_b))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_path


def _tensor_order(name: str) -> tuple[int, str]:
    parts = name.split(".")
    return int(parts[1]), parts[2]


def export_base(
    model: Any,
    tokenizer: Any,
    out_dir: Path,
    *,
    dtype: str = "bfloat16",
    base: str | None = None,
) -> Path:
    """Save the (dequantised) base model as a Hugging Face directory for vLLM.

    Args:
        model: The base model (not the peft wrapper).
        tokenizer: Saved alongside, with the training chat template.
        out_dir: Target directory.
        dtype: `bfloat16` (half the size) or `float32`.
        base: The name adapters trained on it record (`bundled:...gguf`, a
            path); written to `agentrt_base.json`.
    """
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    original = next(model.parameters()).dtype
    model.to(getattr(torch, dtype))
    try:
        model.save_pretrained(str(out_dir), safe_serialization=True)
    finally:
        model.to(original)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(out_dir))
    (out_dir / CHAT_TEMPLATE_FILE).write_text(CHAT_TEMPLATE, encoding="utf-8")
    _ensure_template_in_tokenizer_config(out_dir)
    if base is not None:
        (out_dir / BASE_MANIFEST_FILE).write_text(json.dumps({"base": base}, indent=2) + "\n")
    return out_dir


SHIPPED_FILES = ("adapter_config.json", "adapter_model.safetensors", GGUF_ADAPTER_FILE)


def ship_adapter(
    adapter_dir: Path,
    out_dir: Path,
    *,
    base_config: Mapping[str, Any],
    manifest: Mapping[str, Any],
) -> Path:
    """Write a compact copy of an adapter to ship: float16 safetensors + GGUF, a manifest.

    The manifest records what the caller passes (data hash, seed, commands,
    eval figures) plus each file's size and sha256, which a test checks.
    """
    import hashlib

    import numpy as np
    from safetensors.numpy import load_file, save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    half = {key: value.astype(np.float16) for key, value in weights.items()}
    save_file(half, str(out_dir / "adapter_model.safetensors"), metadata={"format": "pt"})
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    (out_dir / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    export_gguf_lora(out_dir, out_dir / GGUF_ADAPTER_FILE, base_config=base_config, dtype="float16")
    for name in SHIPPED_FILES:
        (out_dir / name).chmod(0o644)  # safetensors writes 0600; shipped files are read by all
    files = {
        name: {
            "bytes": (out_dir / name).stat().st_size,
            "sha256": hashlib.sha256((out_dir / name).read_bytes()).hexdigest(),
        }
        for name in SHIPPED_FILES
    }
    body = {
        "format": "agentrt-lora/1",
        "chat_template": "runtime/model/templates/tool_chat_template.jinja",
        **dict(manifest),
        "files": files,
    }
    (out_dir / MANIFEST_FILE).write_text(json.dumps(body, indent=2, default=str) + "\n")
    return out_dir
