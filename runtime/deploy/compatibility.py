"""Refuse an adapter that cannot work on the server, before it is sent there.

vLLM loads some broken adapters without complaint and serves them: an
adapter whose module names match nothing in the base behaves exactly like the
base model under the adapter's name (vLLM #34186). Others fail in the engine
with an error that says little about the fix. Each check here reads the
adapter's files and the base model's (headers only) and returns a `Refusal`
with a machine-readable `code` and a sentence that says what to do:

- `unsupported`: not a LoRA adapter, or DoRA (vLLM serves plain LoRA).
- `modules_to_save`: full weights (`modules_to_save`, trainable token rows) that
  vLLM does not load.
- `added_tokens`: tokens the base tokenizer lacks (vLLM serves no extra vocabulary).
- `rank_too_high`: a rank above the server's `--max-lora-rank`.
- `no_lora_weights`: `adapter_model.safetensors` holds no LoRA tensor.
- `modules_unmatched`: adapted modules that match no weight of the base.
- `base_mismatch`: the adapter names another base in `adapter_config.json`,
  or its tensors do not fit the base's weight shapes.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from runtime.deploy.checkpoint import AdapterDir, BaseModelDir

__all__ = ["Refusal", "check_adapter", "same_model_name"]

_LORA_TENSOR = re.compile(
    r"^(?:base_model\.model\.)?(?P<module>.+?)\."
    r"(?P<part>lora_A|lora_B|lora_embedding_A|lora_embedding_B)(?:\.default)?(?:\.weight)?$"
)


@dataclasses.dataclass(frozen=True, slots=True)
class Refusal:
    """Why an adapter is not deployed: a code a program can act on, a sentence for a person."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def same_model_name(a: str, b: str) -> bool:
    """Whether two names or paths name the same model (`org/model` matches `/models/org/model`)."""
    a, b = a.rstrip("/"), b.rstrip("/")
    return bool(a and b) and (a == b or a.endswith("/" + b) or b.endswith("/" + a))


def _examples(names: Iterable[str], limit: int = 3) -> str:
    items = sorted(names)
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _listed(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    return []


def check_adapter(
    adapter: AdapterDir,
    base: BaseModelDir,
    *,
    max_lora_rank: int,
    base_names: Sequence[str] = (),
) -> list[Refusal]:
    """Every reason the adapter cannot work on `base` served with `max_lora_rank`.

    Args:
        adapter: The adapter to deploy.
        base: The base model directory the server serves.
        max_lora_rank: The server's `--max-lora-rank` (vLLM's default is 16).
        base_names: Other names the served base goes by (the server's model id
            and root path, aliases the operator gives).

    Returns:
        The refusals, empty when the adapter can be loaded.
    """
    refusals = _config_refusals(adapter.config)
    lora: dict[str, dict[str, tuple[int, ...]]] = {}
    full = []
    for name, shape in adapter.shapes.items():
        match = _LORA_TENSOR.match(name)
        if match is None:
            full.append(name)
        else:
            lora.setdefault(match["module"], {})[match["part"]] = shape
    if full:
        refusals.append(
            Refusal(
                "modules_to_save",
                f"the adapter carries {len(full)} full weight tensor(s) besides its LoRA "
                f"matrices ({_examples(full)}): modules_to_save and trainable tokens are not "
                "served by vLLM; train without modules_to_save",
            )
        )
    if not lora:
        refusals.append(
            Refusal("no_lora_weights", f"{adapter.path} holds no LoRA tensors (lora_A/lora_B)")
        )
    refusals.extend(_module_refusals(lora, base))
    rank = _rank(adapter.config, lora)
    if rank > max_lora_rank:
        refusals.append(
            Refusal(
                "rank_too_high",
                f"the adapter's rank is {rank}, above the server's --max-lora-rank "
                f'{max_lora_rank}: vLLM would refuse it ("LoRA rank {rank} is greater than '
                f'max_lora_rank {max_lora_rank}"); restart vLLM with --max-lora-rank >= {rank} '
                f"(it must cover the largest rank it serves) or train with --rank {max_lora_rank}",
            )
        )
    refusals.extend(_token_refusals(adapter, base))
    named = adapter.base_name
    known = [*base.names, *base_names]
    if named and not any(same_model_name(named, other) for other in known):
        refusals.append(
            Refusal(
                "base_mismatch",
                f"the adapter was trained on {named!r} (adapter_config.json "
                f"base_model_name_or_path), but the server serves {_examples(known, 4)}; if "
                f"that is the same model under another name, say so with --base-alias {named}",
            )
        )
    return refusals


def _config_refusals(config: Mapping[str, Any]) -> list[Refusal]:
    refusals = []
    kind = str(config.get("peft_type") or "LORA").upper()
    if kind != "LORA":
        refusals.append(
            Refusal("unsupported", f"peft_type is {kind}: vLLM serves LoRA adapters only")
        )
    if config.get("use_dora"):
        refusals.append(Refusal("unsupported", "a DoRA adapter (use_dora): vLLM serves plain LoRA"))
    saved = _listed(config.get("modules_to_save"))
    if saved:
        refusals.append(
            Refusal(
                "modules_to_save",
                f"adapter_config.json lists modules_to_save ({_examples(saved)}): vLLM does "
                "not load fully trained modules; train without modules_to_save",
            )
        )
    if config.get("trainable_token_indices"):
        refusals.append(
            Refusal(
                "added_tokens",
                "adapter_config.json has trainable_token_indices (trained embedding rows): vLLM "
                "serves no extra or retrained vocabulary",
            )
        )
    return refusals


def _base_weight(module: str, base: BaseModelDir) -> tuple[int, ...] | None:
    shape = base.shapes.get(f"{module}.weight")
    if shape is None and module.endswith("lm_head") and base.config.get("tie_word_embeddings"):
        tied = [k for k in base.shapes if k.endswith("embed_tokens.weight")]
        shape = base.shapes[tied[0]] if tied else None
    return shape


def _module_refusals(
    lora: Mapping[str, Mapping[str, tuple[int, ...]]], base: BaseModelDir
) -> list[Refusal]:
    unmatched = []
    misfits = []
    for module, parts in lora.items():
        weight = _base_weight(module, base)
        if weight is None:
            unmatched.append(module)
            continue
        if len(weight) != 2:
            continue
        embedding = "lora_embedding_A" in parts or "lora_embedding_B" in parts
        a = parts.get("lora_embedding_A" if embedding else "lora_A")
        b = parts.get("lora_embedding_B" if embedding else "lora_B")
        a_fits = a is None or (len(a) == 2 and a[1] == weight[0 if embedding else 1])
        b_fits = b is None or (len(b) == 2 and b[0] == weight[1 if embedding else 0])
        if not (a_fits and b_fits):
            misfits.append(f"{module} (A {a}, B {b} vs base {weight})")
    refusals = []
    if unmatched:
        sample = _examples(k.removesuffix(".weight") for k in base.shapes if k.endswith(".weight"))
        refusals.append(
            Refusal(
                "modules_unmatched",
                f"{len(unmatched)} of {len(lora)} adapted modules match nothing in the base "
                f"model ({_examples(unmatched)}; the base has e.g. {sample}): vLLM can load "
                "such an adapter and silently serve the base model's behaviour under its name "
                "(vLLM #34186); train it on this base",
            )
        )
    if misfits:
        refusals.append(
            Refusal(
                "base_mismatch",
                f"{len(misfits)} adapted module(s) do not fit the base's weight shapes "
                f"({_examples(misfits, 2)}): the adapter was trained on another model",
            )
        )
    return refusals


def _rank(config: Mapping[str, Any], lora: Mapping[str, Mapping[str, tuple[int, ...]]]) -> int:
    ranks = [int(config.get("r") or 0)]
    pattern = config.get("rank_pattern")
    if isinstance(pattern, Mapping):
        ranks.extend(int(v) for v in pattern.values() if isinstance(v, int))
    for parts in lora.values():
        for part in ("lora_A", "lora_embedding_A"):
            if parts.get(part):
                ranks.append(parts[part][0])
    return max(ranks)


def _token_refusals(adapter: AdapterDir, base: BaseModelDir) -> list[Refusal]:
    new: set[str] = set()
    if adapter.tokens and base.tokens:
        new = set(adapter.tokens - base.tokens)
    size = base.vocab_size
    if size is not None:
        new.update(t for t, token_id in adapter.added_tokens.items() if token_id >= size)
    if not new:
        return []
    return [
        Refusal(
            "added_tokens",
            f"the adapter's tokenizer has {len(new)} token(s) the base lacks "
            f"({_examples(repr(t) for t in new)}): vLLM serves no extra vocabulary; train "
            "with the base tokenizer as it is",
        )
    ]
