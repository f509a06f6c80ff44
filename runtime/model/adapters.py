"""The tool-calling adapter shipped with the runtime, and how to find it.

`runtime/model/general_adapter/` holds a LoRA adapter for the bundled
SmolLM2-135M trained across many generated tool modules (see
`runtime.finetune.general`), so the embedded model calls tools it has never
seen: `adapter.gguf` for the llama.cpp server, `adapter_model.safetensors` +
`adapter_config.json` for vLLM (`--lora-modules general=DIR`), and
`agentrt_adapter.json`, the manifest (data hash, seed, exact commands, eval
figures, each file's sha256). `agentrt serve-model` and `agentrt demo` use it
unless told `--base`; `agentrt finetune --init-adapter general` starts from it.
"""

from __future__ import annotations

import hashlib
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

from runtime.model.call_form import CallForm

__all__ = [
    "GeneralAdapterError",
    "call_form_of",
    "general_adapter_dir",
    "general_adapter_gguf",
    "manifest",
    "similar_requests_of",
]

MANIFEST_FILE = "agentrt_adapter.json"
GGUF_FILE = "adapter.gguf"


class GeneralAdapterError(RuntimeError):
    """The shipped adapter is missing or does not match its manifest."""


def general_adapter_dir() -> Path:
    """The directory of the shipped general adapter."""
    return Path(str(files("runtime.model").joinpath("general_adapter")))


def manifest() -> dict[str, Any]:
    """The shipped adapter's manifest."""
    path = general_adapter_dir() / MANIFEST_FILE
    if not path.is_file():
        raise GeneralAdapterError(
            f"the general adapter is not installed ({path} is missing); use --base for the "
            "bare model"
        )
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def general_adapter_gguf(*, verify: bool = False) -> Path:
    """The shipped adapter in GGUF form (for the embedded llama.cpp server).

    Args:
        verify: Also check the file's sha256 against the manifest.
    """
    path = general_adapter_dir() / GGUF_FILE
    if not path.is_file():
        raise GeneralAdapterError(
            f"the general adapter is not installed ({path} is missing); use --base for the "
            "bare model"
        )
    if verify:
        expected = manifest()["files"][GGUF_FILE]["sha256"]
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != expected:
            raise GeneralAdapterError(f"{path} does not match its manifest (sha256 {actual})")
    return path


def _manifest_next_to(adapter: Path | None) -> dict[str, Any]:
    if adapter is None:
        return {}
    folder = adapter if adapter.is_dir() else adapter.parent
    try:
        data = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def call_form_of(adapter: Path | None) -> CallForm:
    """How the adapter writes a call's arguments (`runtime.model.call_form`), from
    the manifest next to `adapter`; `plain` without one (the bare model, and
    adapters trained before the form was recorded)."""
    value = _manifest_next_to(adapter).get("call_form")
    return "every-key" if value == "every-key" else "plain"


def similar_requests_of(adapter: Path | None) -> int:
    """How many similar worked requests the adapter was trained to see before a
    request (`agentrt finetune --similar-requests K`), from the manifest next to
    `adapter` (a GGUF file or an adapter directory); 0 without one."""
    value = _manifest_next_to(adapter).get("similar_requests", 0)
    return value if isinstance(value, int) and value > 0 else 0
