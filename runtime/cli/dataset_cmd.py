"""`agentrt dataset synth|export|curate`: build and clean fine-tuning data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dataset",
        help="build fine-tuning data: synthesise, export from audit logs, curate",
        description="Build fine-tuning data in the OpenAI format (messages + tools).",
    )
    commands = parser.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)

    synth = commands.add_parser("synth", help="synthesise examples for every tool of a module")
    synth.add_argument("--module", help="tool module: dotted name or .py path")
    synth.add_argument("--general", type=int, metavar="N",
                       help="instead of --module: N generated modules from the tool catalog "
                       "(the general adapter's data; see runtime.finetune.general)")  # fmt: skip
    synth.add_argument("--bfcl", metavar="CATEGORIES",
                       help="instead of --module: the function schemas of these BFCL categories "
                       "(e.g. simple,multiple,parallel,irrelevance); never their questions")  # fmt: skip
    synth.add_argument("--out", required=True, type=Path, help="JSON-lines file to write")
    synth.add_argument("--per-tool", type=int,
                       help="single-call examples per tool (default 40; 5 per tool and module "
                       "with --general)")  # fmt: skip
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--trajectory-ratio", type=float, default=0.35,
                       help="trajectories per tool, as a share of --per-tool")  # fmt: skip
    synth.add_argument("--parallel-ratio", type=float, default=0.2,
                       help="two-call examples, as a share of single-call ones")  # fmt: skip
    synth.add_argument("--optional-rate", type=float, default=0.3,
                       help="chance that a request states a given optional argument "
                       "(settings: booleans and choices, 1.3 times as often)")  # fmt: skip
    synth.add_argument("--no-tool-share", type=float, default=0.22,
                       help="share of examples that need no call")  # fmt: skip
    synth.add_argument(
        "--phrasebook", type=Path, help="JSON phrasings (see runtime.finetune.phrasebook)"
    )
    synth.add_argument(
        "--no-metadata", action="store_true", help="plain OpenAI format, no `metadata`"
    )
    synth.add_argument("--teacher-url", metavar="URL",
                       help="an OpenAI-compatible server whose model rewords the requests "
                       "(a paraphrase is kept only if every value survives)")  # fmt: skip
    synth.add_argument("--teacher-model", metavar="NAME", help="the teacher's model name")
    synth.add_argument("--teacher-share", type=float, default=0.5,
                       help="share of the requests sent to the teacher")  # fmt: skip
    synth.set_defaults(handler=_synth)

    export = commands.add_parser("export", help="turn audited, successful runs into examples")
    export.add_argument("audit_logs", nargs="+", type=Path, metavar="AUDIT_LOG")
    export.add_argument("--module", required=True, help="the tools the runs used")
    export.add_argument("--out", required=True, type=Path)
    export.add_argument("--include-no-call", action="store_true",
                        help="also export runs answered without a call")  # fmt: skip
    export.set_defaults(handler=_export)

    curate = commands.add_parser("curate", help="dedupe, drop near-duplicates, report diversity")
    curate.add_argument("input", type=Path, metavar="IN")
    curate.add_argument("--out", required=True, type=Path)
    curate.add_argument("--report", required=True, type=Path, metavar="DIR")
    curate.add_argument("--threshold", type=float, default=0.95, help="cosine similarity cut-off")
    curate.add_argument("--module", help="tool module, so tools with no examples are reported")
    curate.add_argument("--min-per-tool", type=int, default=20)
    curate.set_defaults(handler=_curate)


def _registry(spec: str) -> Any:
    from runtime.module_loader import load_module
    from runtime.tools import ToolRegistry

    return ToolRegistry.from_module(load_module(spec))


def _phrasebook_for(registry: Any, extra: Path | None) -> Any:
    """Built-in phrasings for the built-in tools, generic ones otherwise, plus a user file."""
    from runtime.finetune import builtin_phrasings
    from runtime.finetune import vocabulary as vocab
    from runtime.finetune.phrasebook import Phrasebook, load_phrasebook
    from runtime.finetune.synth import GENERIC_NO_TOOL

    builtin = builtin_phrasings.builtin_phrasebook()
    ours = {
        tool.name
        for tool in registry
        if tool.name in builtin.tools and getattr(tool.fn, "__module__", "").startswith("tools.")
    }
    book = Phrasebook(
        tools={name: builtin.tools[name] for name in ours},
        no_tool=list(builtin.no_tool)
        if ours
        else [*GENERIC_NO_TOOL, *builtin_phrasings.general_no_tool(), *vocab.CHIT_CHAT],
        joiners=list(builtin.joiners),
    )
    if extra is not None:
        user = load_phrasebook(extra)
        book = book.merged(user)
        if user.no_tool:  # the user's no-tool requests replace ours (theirs know their tools)
            book.no_tool = list(user.no_tool)
    return book


def _synth(args: argparse.Namespace) -> int:
    from runtime.finetune.dataset_format import write_jsonl
    from runtime.finetune.synth import SynthConfig, SynthesisError, Synthesizer

    sources = [args.module, args.general, args.bfcl]
    if sum(source is not None for source in sources) != 1:
        print(
            "agentrt dataset synth: give exactly one of --module, --general and --bfcl",
            file=sys.stderr,
        )
        return 2
    if args.bfcl is not None:
        from runtime.finetune.eval_runner import load_bfcl
        from runtime.finetune.general import describe, schema_dataset

        try:
            items = load_bfcl([c.strip() for c in args.bfcl.split(",") if c.strip()])
        except (ValueError, FileNotFoundError) as exc:
            print(f"agentrt dataset synth: {exc}", file=sys.stderr)
            return 2
        examples, skipped = schema_dataset(
            [item.tools for item in items], per_tool=args.per_tool or 2, seed=args.seed
        )
        count = write_jsonl(args.out, examples, metadata=not args.no_metadata)
        for line in skipped:
            print(f"agentrt dataset synth: skipped {line}", file=sys.stderr)
        print(json.dumps({"written": count, "out": str(args.out), "skipped": len(skipped),
                          **describe(examples)}))  # fmt: skip
        return 0
    if args.general is not None:
        from runtime.finetune.general import describe, general_dataset

        examples = general_dataset(
            args.general,
            per_tool=args.per_tool or 5,
            seed=args.seed,
            optional_rate=args.optional_rate,
        )
        count = write_jsonl(args.out, examples, metadata=not args.no_metadata)
        print(json.dumps({"written": count, "out": str(args.out), **describe(examples)}))
        return 0
    registry = _registry(args.module)
    config = SynthConfig(
        per_tool=args.per_tool or 40,
        trajectory_ratio=args.trajectory_ratio,
        parallel_ratio=args.parallel_ratio,
        no_tool_share=args.no_tool_share,
        optional_rate=args.optional_rate,
        seed=args.seed,
    )
    try:
        examples = Synthesizer(
            registry, _phrasebook_for(registry, args.phrasebook), config
        ).generate()
    except SynthesisError as exc:
        print(f"agentrt dataset synth: {exc}", file=sys.stderr)
        return 2
    teacher_report = None
    if args.teacher_url or args.teacher_model:
        from runtime.finetune.teacher import Teacher, paraphrase_examples

        if not (args.teacher_url and args.teacher_model):
            print("agentrt dataset synth: give both --teacher-url and --teacher-model",
                  file=sys.stderr)  # fmt: skip
            return 2
        teacher = Teacher(args.teacher_url, args.teacher_model)
        report = paraphrase_examples(examples, teacher, share=args.teacher_share, seed=args.seed)
        teacher_report = report.to_dict()
        if report.gave_up:
            print(
                f"agentrt dataset synth: the teacher failed ({report.gave_up}); the remaining "
                "requests keep their synthesised wording",
                file=sys.stderr,
            )
    count = write_jsonl(args.out, examples, metadata=not args.no_metadata)
    kinds: dict[str, int] = {}
    for example in examples:
        kind = example["metadata"]["kind"]
        kinds[kind] = kinds.get(kind, 0) + 1
    summary = {"written": count, "out": str(args.out), "tools": len(registry), "kinds": kinds}
    if teacher_report is not None:
        summary["teacher"] = teacher_report
    print(json.dumps(summary))
    return 0


def _export(args: argparse.Namespace) -> int:
    from runtime.finetune.dataset_format import write_jsonl
    from runtime.finetune.export import export_paths

    try:
        examples, stats = export_paths(
            args.audit_logs, _registry(args.module), include_no_call=args.include_no_call
        )
    except FileNotFoundError as exc:
        print(f"agentrt dataset export: {exc}", file=sys.stderr)
        return 2
    write_jsonl(args.out, examples)
    print(json.dumps({"out": str(args.out), **stats.to_dict()}))
    return 0


def _curate(args: argparse.Namespace) -> int:
    from runtime.finetune.curate import curate, write_report
    from runtime.finetune.dataset_format import DatasetFormatError, read_jsonl, write_jsonl

    try:
        examples = read_jsonl(args.input)
    except (DatasetFormatError, OSError) as exc:
        print(f"agentrt dataset curate: {exc}", file=sys.stderr)
        return 2
    names = [tool.name for tool in _registry(args.module)] if args.module else []
    kept, report = curate(
        examples, threshold=args.threshold, tool_names=names, min_per_tool=args.min_per_tool
    )
    write_jsonl(args.out, kept)
    paths = write_report(report, args.report)
    summary = report.to_dict()
    summary.pop("removed_examples", None)
    print(
        json.dumps(
            {"out": str(args.out), "report": {k: str(v) for k, v in paths.items()}, **summary}
        )
    )
    return 0
