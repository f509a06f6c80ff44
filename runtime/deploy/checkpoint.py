"""What an adapter directory and a base model directory hold, read without torch.

A LoRA adapter written by `agentrt finetune` (or peft) is `adapter_config.json`
(rank `r`, `target_modules`, `base_model_name_or_path`, `modules_to_save`),
`adapter_model.safetensors` (its tensor names say which modules are adapted,
their shapes which sizes they fit) and, usually, the tokenizer. A base model
served by vLLM is a Hugging Face directory: `config.json`, one
`model.safetensors` or shards listed in `model.safetensors.index.json`, the
tokenizer. Only the safetensors headers are read (a JSON table of names,
dtypes and shapes at the start of the file), so checking a multi-GB base
takes milliseconds and needs neither torch nor the safetensors package.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runtime.finetune.adapter_export import BASE_MANIFEST_FILE

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "BASE_MANIFEST",
    "LOADED_FILES",
    "AdapterDir",
    "BaseModelDir",
    "CheckpointError",
    "read_safetensors_shapes",
    "sha256_file",
]

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
#: The files vLLM reads to load an adapter: what a version's sha256 digest covers.
LOADED_FILES = (ADAPTER_CONFIG, ADAPTER_WEIGHTS)
#: Written next to a base exported by `agentrt finetune --save-base`: the name
#: the adapters trained on it record as `base_model_name_or_path`.
BASE_MANIFEST = BASE_MANIFEST_FILE
_MAX_HEADER = 100 * 1024 * 1024


class CheckpointError(ValueError):
    """A directory does not hold what it should; the message names the file."""


def read_safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, from a safetensors file's header alone.

    Raises:
        CheckpointError: The file is missing or its header is not safetensors.
    """
    try:
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) != 8:
                raise CheckpointError(f"{path} is not a safetensors file (too short)")
            (size,) = struct.unpack("<Q", prefix)
            if size > _MAX_HEADER:
                raise CheckpointError(f"{path} is not a safetensors file (header of {size} bytes)")
            header = json.loads(handle.read(size))
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{path} is not a safetensors file (bad header)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not a safetensors file (bad header)")
    shapes: dict[str, tuple[int, ...]] = {}
    for name, info in header.items():
        if name == "__metadata__" or not isinstance(info, dict):
            continue
        shapes[name] = tuple(int(n) for n in info.get("shape", ()))
    return shapes


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CheckpointError(f"{path} is not JSON: {exc}") from None


def _tokenizer_tokens(folder: Path) -> tuple[set[str], dict[str, int]]:
    """(every token of the vocabulary, added tokens -> id) from a folder's tokenizer files."""
    vocab: set[str] = set()
    added: dict[str, int] = {}
    tokenizer = folder / "tokenizer.json"
    if tokenizer.is_file():
        data = _read_json(tokenizer)
        data = data if isinstance(data, dict) else {}
        model = data.get("model")
        if isinstance(model, dict) and isinstance(model.get("vocab"), dict):
            vocab.update(model["vocab"])
        for entry in data.get("added_tokens") or []:
            if isinstance(entry, dict) and isinstance(entry.get("content"), str):
                added[entry["content"]] = int(entry.get("id", -1))
    config = folder / "tokenizer_config.json"
    if config.is_file():
        data = _read_json(config)
        decoder = data.get("added_tokens_decoder") if isinstance(data, dict) else None
        for token_id, entry in (decoder or {}).items():
            if isinstance(entry, dict) and isinstance(entry.get("content"), str):
                added.setdefault(entry["content"], int(token_id))
    extra = folder / "added_tokens.json"
    if extra.is_file():
        data = _read_json(extra)
        if isinstance(data, dict):
            for content, token_id in data.items():
                added.setdefault(str(content), int(token_id))
    return vocab | set(added), added


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class AdapterDir:
    """A LoRA adapter directory, as far as serving it is concerned.

    Attributes:
        path: The directory (resolved).
        config: `adapter_config.json`.
        shapes: Tensor name -> shape, from `adapter_model.safetensors`.
        tokens: Every token of its tokenizer (empty without tokenizer files).
        added_tokens: Its tokenizer's added tokens -> id.
        files: sha256 of each file vLLM loads (`adapter_config.json`,
            `adapter_model.safetensors`).
    """

    path: Path
    config: Mapping[str, Any]
    shapes: Mapping[str, tuple[int, ...]]
    tokens: frozenset[str]
    added_tokens: Mapping[str, int]
    files: Mapping[str, str]

    @classmethod
    def read(cls, path: Path) -> AdapterDir:
        """Read an adapter directory.

        Raises:
            CheckpointError: It is not a directory with `adapter_config.json`
                and `adapter_model.safetensors`.
        """
        folder = path.resolve()
        if not folder.is_dir():
            raise CheckpointError(f"no adapter directory at {path}")
        for name in LOADED_FILES:
            if not (folder / name).is_file():
                raise CheckpointError(
                    f"{path} holds no {name}: give a directory written by `agentrt finetune` "
                    "(peft's save_pretrained with safetensors)"
                )
        config = _read_json(folder / ADAPTER_CONFIG)
        if not isinstance(config, dict):
            raise CheckpointError(f"{folder / ADAPTER_CONFIG} is not a JSON object")
        tokens, added = _tokenizer_tokens(folder)
        return cls(
            path=folder,
            config=config,
            shapes=read_safetensors_shapes(folder / ADAPTER_WEIGHTS),
            tokens=frozenset(tokens),
            added_tokens=added,
            files={name: sha256_file(folder / name) for name in LOADED_FILES},
        )

    @property
    def digest(self) -> str:
        """One sha256 over the loaded files' digests: the version's identity."""
        lines = "".join(f"{name} {sha}\n" for name, sha in sorted(self.files.items()))
        return hashlib.sha256(lines.encode()).hexdigest()

    @property
    def base_name(self) -> str | None:
        """`base_model_name_or_path`, or None when the adapter names no base."""
        value = self.config.get("base_model_name_or_path")
        return str(value) if value else None


@dataclasses.dataclass(frozen=True)
class BaseModelDir:
    """A Hugging Face base model directory (what vLLM serves).

    Attributes:
        path: The directory (resolved).
        config: `config.json`.
        shapes: Weight name -> shape, over every safetensors shard.
        tokens: Every token of its tokenizer (empty without tokenizer files).
        names: What the base is known as: the directory, and the name in
            `agentrt_base.json` (`agentrt finetune --save-base`) or
            `config.json`'s `_name_or_path`.
    """

    path: Path
    config: Mapping[str, Any]
    shapes: Mapping[str, tuple[int, ...]]
    tokens: frozenset[str]
    names: tuple[str, ...]

    @classmethod
    def read(cls, path: Path) -> BaseModelDir:
        """Read a base model directory.

        Raises:
            CheckpointError: No `config.json`, or no safetensors weights.
        """
        folder = path.resolve()
        if not (folder / "config.json").is_file():
            raise CheckpointError(
                f"{path} holds no config.json: give the Hugging Face directory the server "
                "serves (`agentrt finetune --save-base DIR` writes one)"
            )
        config = _read_json(folder / "config.json")
        if not isinstance(config, dict):
            raise CheckpointError(f"{folder / 'config.json'} is not a JSON object")
        shapes: dict[str, tuple[int, ...]] = {}
        index = folder / "model.safetensors.index.json"
        if index.is_file():
            weight_map = _read_json(index).get("weight_map") or {}
            for shard in sorted(set(weight_map.values())):
                shapes.update(read_safetensors_shapes(folder / str(shard)))
        elif (folder / "model.safetensors").is_file():
            shapes = read_safetensors_shapes(folder / "model.safetensors")
        else:
            raise CheckpointError(
                f"{path} holds no model.safetensors (or model.safetensors.index.json)"
            )
        names = [str(path), str(folder)]
        manifest = folder / BASE_MANIFEST
        if manifest.is_file():
            recorded = _read_json(manifest)
            if isinstance(recorded, dict) and recorded.get("base"):
                names.append(str(recorded["base"]))
        if config.get("_name_or_path"):
            names.append(str(config["_name_or_path"]))
        tokens, _ = _tokenizer_tokens(folder)
        return cls(folder, config, shapes, frozenset(tokens), tuple(dict.fromkeys(names)))

    @property
    def vocab_size(self) -> int | None:
        value = self.config.get("vocab_size")
        if value is None and isinstance(self.config.get("text_config"), dict):
            value = self.config["text_config"].get("vocab_size")
        return int(value) if isinstance(value, int) else None
