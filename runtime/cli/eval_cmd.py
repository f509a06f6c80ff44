"""`agentrt eval`: score served models on held-out requests, BFCL-style, and compare them.

Exit codes: 0 the report was written; 1 an embedded model server (`--local`)
could not be started; 2 refused before any model was asked (bad flags, data,
variants, or a `--local` adapter that does not exist).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from runtime.model.call_form import CallForm


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score models on held-out tool requests (or BFCL data) and compare them",
        description=(
            "Ask each model for the next turn of every held-out item and score it: well-formed "
            "call, right tool, arguments, full call, abstention when no tool fits, answer after "
            "a tool result. The first model is compared with each other one (exact McNemar test). "
            "Exit 2: refused before any model was asked; exit 1: a --local server did not start."
        ),
    )
    parser.add_argument("--module", help="tool module whose schemas replace the items' tools")
    parser.add_argument("--data", type=Path, action="append", default=[],
                        help="held-out JSON lines (training format or saved items); repeatable")  # fmt: skip
    parser.add_argument(
        "--bfcl", help="BFCL categories from the bfcl-eval package, e.g. simple,irrelevance"
    )
    parser.add_argument("--bfcl-limit", type=int, help="first N items of each BFCL category")
    parser.add_argument(
        "--base-url", action="append", default=[], help="OpenAI-compatible URL; repeatable"
    )
    parser.add_argument(
        "--model", action="append", default=[], help="model name for each --base-url"
    )
    parser.add_argument(
        "--call-form", action="append", default=[], choices=["plain", "every-key"],
        help="for each --base-url: the form its adapter writes calls in (default plain; "
        "every-key for an adapter whose agentrt_adapter.json says so); --local follows "
        "the adapter's manifest",
    )  # fmt: skip
    parser.add_argument("--local", action="append", default=[], metavar="LABEL[=ADAPTER]",
                        help="start the embedded llama.cpp server for the bundled model, optionally "
                        "with an adapter (dir from `agentrt finetune`, a .gguf, or 'general' for "
                        "the shipped adapter); repeatable")  # fmt: skip
    parser.add_argument("--chat-format", default="hermes",
                        help="for --local: 'hermes' (the training template) or a llama-cpp-python "
                        "format such as chatml-function-calling")  # fmt: skip
    parser.add_argument("--no-tool-grammar", action="store_true",
                        help="for --local: decode without the tools' grammar (by default every "
                        "call names an offered tool and matches its schema)")  # fmt: skip
    parser.add_argument("--no-ground-arguments", action="store_true",
                        help="for --local: serve calls as decoded (by default the optional "
                        "arguments the request states are filled in, the others dropped)")  # fmt: skip
    parser.add_argument("--server-log", type=Path, metavar="DIR",
                        help="for --local: write each server's output to DIR/LABEL.log (what "
                        "grounding changed in each call; AGENTRT_GROUNDING_LOG=DEBUG adds what "
                        "the model offered)")  # fmt: skip
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL[:KEY=VALUE,...]",
                        help="a way of asking a model, compared with the others on the same items; "
                        "keys: target=LABEL examples=FILE template=FILE think=1 tools_in_prompt=1 "
                        "preset=NAME rag=INDEX rag_k=N rag_min_score=X (repeatable; default: each "
                        "model as it is)")  # fmt: skip
    parser.add_argument("--limit", type=int, help="only the first N items (a quick check)")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="requests in flight per model (vLLM batches them; llama.cpp serves one "
                        "at a time, so keep 1 there for honest latencies)")  # fmt: skip
    parser.add_argument("--table", type=Path, help="write the comparison as a Markdown table")
    parser.add_argument("--max-tokens", type=int, default=192)
    parser.add_argument("--model-timeout", type=float, default=300.0, metavar="SECONDS",
                        help="give up on one request after SECONDS (default 300: a CPU server "
                        "answering a long prompt is slow)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--chart", type=Path, help="write a PNG bar chart here")
    parser.add_argument("--title", default="", help="chart title")
    parser.add_argument(
        "--no-predictions", action="store_true", help="leave replies out of the report"
    )
    parser.set_defaults(handler=_eval)


def _targets(args: argparse.Namespace) -> list[Any]:
    from runtime.finetune.eval_runner import LocalTarget, RemoteTarget

    targets: list[Any] = []
    if len(args.model) not in (0, len(args.base_url)) or (args.model and not args.base_url):
        raise ValueError("give one --model per --base-url")
    if args.call_form and len(args.call_form) != len(args.base_url):
        raise ValueError("give one --call-form per --base-url, or none")
    for index, url in enumerate(args.base_url):
        model = args.model[index] if args.model else "default"
        every_key = bool(args.call_form) and args.call_form[index] == "every-key"
        form: CallForm = "every-key" if every_key else "plain"
        targets.append(RemoteTarget(label=model, base_url=url, model=model, call_form=form))
    if args.server_log is not None:
        args.server_log.mkdir(parents=True, exist_ok=True)
    for spec in args.local:
        label, _, adapter = spec.partition("=")
        label = label or "local"
        targets.append(
            LocalTarget(
                label=label,
                adapter=_adapter_path(spec, adapter) if adapter else None,
                chat_format=args.chat_format,
                tool_grammar=not args.no_tool_grammar,
                ground_arguments=not args.no_ground_arguments,
                log_path=args.server_log / f"{label}.log" if args.server_log else None,
            )
        )
    if not targets:
        raise ValueError("name at least one model: --base-url URL --model NAME, or --local LABEL")
    return targets


def _adapter_path(spec: str, adapter: str) -> Path:
    """The adapter of `--local LABEL=ADAPTER`, checked before any server starts.

    `general` names the shipped general adapter.
    """
    if adapter == "general":
        from runtime.model.adapters import general_adapter_dir

        path = general_adapter_dir()
        if not (path / "adapter.gguf").is_file():
            raise ValueError(f"--local {spec}: the general adapter is not installed ({path})")
        return path
    path = Path(adapter)
    if path.is_dir():
        if not (path / "adapter.gguf").is_file():
            raise ValueError(
                f"--local {spec}: {path} holds no adapter.gguf; give a directory written by "
                "`agentrt finetune` or a .gguf file"
            )
    elif not path.is_file():
        raise ValueError(
            f"--local {spec}: no adapter at {path}; give a directory written by "
            "`agentrt finetune` or a .gguf file"
        )
    return path


def _trained_similar(target: Any) -> int:
    """The similar requests a local adapter was trained to see (its manifest), so
    the default variant asks it the way `run` and `demo` serve it."""
    from runtime.model.adapters import similar_requests_of

    return similar_requests_of(getattr(target, "adapter", None))


def _items(args: argparse.Namespace) -> list[Any]:
    from runtime.finetune.eval_runner import load_bfcl, read_items

    items = []
    for path in args.data:
        items.extend(read_items(path))
    if args.module:
        from runtime.module_loader import load_module
        from runtime.tools import ToolRegistry

        schemas = ToolRegistry.from_module(load_module(args.module)).openai_schemas()
        items = [_with_tools(item, schemas) for item in items]
    if args.bfcl:
        categories = [c.strip() for c in args.bfcl.split(",") if c.strip()]
        items.extend(load_bfcl(categories, limit=args.bfcl_limit))
    if not items:
        raise ValueError("nothing to evaluate: give --data FILE and/or --bfcl CATEGORIES")
    if args.limit is not None:
        if args.limit < 1:
            raise ValueError("--limit must be at least 1")
        items = items[: args.limit]
    return items


def _with_tools(item: Any, schemas: list[dict[str, Any]]) -> Any:
    import dataclasses

    return dataclasses.replace(item, tools=list(schemas))


def _eval(args: argparse.Namespace) -> int:
    from runtime.finetune.eval_runner import plot_comparison
    from runtime.finetune.eval_variants import (
        Variant,
        check_variants,
        compare_variants,
        parse_variant,
    )

    try:
        targets = _targets(args)
        items = _items(args)
        variants = [parse_variant(spec) for spec in args.variant] or [
            Variant(label=t.label, target=t.label, similar=_trained_similar(t)) for t in targets
        ]
        check_variants(targets, variants, items)
        if args.concurrency < 1:
            raise ValueError("--concurrency must be at least 1")
        if not args.model_timeout > 0:
            raise ValueError("--model-timeout must be a positive number of seconds")
    except (ValueError, OSError) as exc:
        print(f"agentrt eval: {exc}", file=sys.stderr)
        return 2
    from runtime.model.local_server import LocalServerError

    try:
        report = compare_variants(
            targets,
            variants,
            items,
            max_tokens=args.max_tokens,
            keep_predictions=not args.no_predictions,
            concurrency=args.concurrency,
            timeout_s=args.model_timeout,
        )
    except LocalServerError as exc:
        print(f"agentrt eval: the local model server did not start: {exc}", file=sys.stderr)
        return 1
    report["data"] = [str(p) for p in args.data] + ([f"bfcl:{args.bfcl}"] if args.bfcl else [])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if args.chart:
        plot_comparison(report, args.chart, title=args.title)
    if args.table:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(report["table"])
    brief = {
        "items": report["items"],
        "models": {label: entry["summary"] for label, entry in report["models"].items()},
        "comparisons": report["comparisons"],
    }
    for summary in brief["models"].values():
        summary.pop("by_category", None)
    print(json.dumps(brief, indent=2))
    print(report["table"])
    return 0
