"""Prompt, preset and retrieval flags shared by `run` and `demo`."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from runtime.cli.gate_options import UsageError

SAMPLING_FLAGS = (
    ("temperature", float),
    ("top_p", float),
    ("max_tokens", int),
    ("frequency_penalty", float),
    ("presence_penalty", float),
    ("seed", int),
    ("top_k", int),
    ("min_p", float),
    ("repetition_penalty", float),
)


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    """Presets, per-phase presets and every sampling field."""
    parser.add_argument(
        "--preset",
        help="sampling preset for the turns that choose tool calls: precise | balanced | creative",
    )
    parser.add_argument(
        "--answer-preset",
        help="sampling preset for the final answer, after tool results (default: --preset)",
    )
    for name, kind in SAMPLING_FLAGS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None)
    parser.add_argument("--stop", action="append", default=None, help="stop sequence (repeatable)")
    parser.add_argument(
        "--tool-choice", default=None, help="auto | required | none | the name of one tool"
    )
    parser.add_argument(
        "--parallel-tool-calls", action=argparse.BooleanOptionalAction, default=None
    )


def add_prompt_options(parser: argparse.ArgumentParser) -> None:
    """System prompt, few-shot, think-first, tools-in-prompt and retrieval flags."""
    group = parser.add_argument_group("prompt and retrieval")
    group.add_argument("--system", help="a literal system prompt")
    group.add_argument(
        "--prompt-template", type=Path, help="system prompt template (YAML/JSON with named parts)"
    )
    group.add_argument(
        "--var", action="append", default=[], metavar="NAME=VALUE", help="template variable"
    )
    group.add_argument(
        "--examples", type=Path, help="few-shot conversations (JSON lines, training format)"
    )
    group.add_argument(
        "--think-first",
        action="store_true",
        help="ask for reasoning in <think> tags first; kept out of answers and tool arguments",
    )
    group.add_argument(
        "--tools-in-prompt",
        action="store_true",
        help="render tool schemas into the system prompt (servers whose template ignores tools)",
    )
    group.add_argument(
        "--rag", type=Path, metavar="INDEX", help="retrieval index (`agentrt rag index`)"
    )
    group.add_argument(
        "--rag-mode",
        choices=["context", "tool"],
        default="context",
        help="inject passages before the request, or offer a search_docs tool",
    )
    group.add_argument("--rag-k", type=int, default=4, help="passages per query")
    group.add_argument(
        "--similar-requests",
        type=int,
        metavar="K",
        help="show the K synthesised requests most like each request before it "
        "(default: what the embedded adapter, or the deployed version --model names, was "
        "trained with; 0 for none)",
    )
    group.add_argument("--rag-min-score", type=float, default=0.3, help="cosine threshold")


def settings_from_args(args: argparse.Namespace) -> tuple[Any, Any]:
    """`(settings, answer_settings)`: presets, then explicit flags over both."""
    from runtime.model.settings import SamplingSettings, SettingsError

    overrides: dict[str, Any] = {
        name: getattr(args, name) for name, _ in SAMPLING_FLAGS if getattr(args, name) is not None
    }
    if args.stop:
        overrides["stop"] = tuple(args.stop)
    if args.tool_choice:
        overrides["tool_choice"] = args.tool_choice
    if args.parallel_tool_calls is not None:
        overrides["parallel_tool_calls"] = args.parallel_tool_calls
    try:
        first = SamplingSettings.preset(args.preset) if args.preset else SamplingSettings()
        settings = first.updated(**overrides)
        answer = None
        if args.answer_preset:
            answer = SamplingSettings.preset(args.answer_preset).updated(**overrides)
    except SettingsError as exc:
        raise UsageError(_as_flags(str(exc))) from None
    return settings, answer


def _as_flags(message: str) -> str:
    """`temperature: ...` → `--temperature: ...` in a settings error."""
    head, _, problems = message.partition(": ")
    parts = []
    for problem in problems.split("; "):
        field, sep, rest = problem.partition(": ")
        parts.append(f"--{field.replace('_', '-')}{sep}{rest}" if sep else problem)
    return f"{head}: " + "; ".join(parts)


@dataclasses.dataclass(slots=True)
class PromptChoice:
    """What `Agent` takes from the prompt flags."""

    prompt: Any
    retrieval: Any = None


def prompt_from_args(
    args: argparse.Namespace,
    registry: Any,
    *,
    default_system: str | None = None,
    adapter: Path | None = None,
) -> PromptChoice:
    """Build the `Prompt` (and retrieval) the flags ask for.

    `adapter` is the embedded model's adapter, whose manifest says how many
    similar requests it was trained to see (`--similar-requests` overrides).
    In `--rag-mode tool` the `search_docs` tool is added to `registry`. A
    `--tool-choice` naming none of the tools is refused here, before any
    server starts.
    """
    from runtime.prompting import Prompt, PromptError, PromptTemplate

    variables = {}
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--var takes NAME=VALUE, got {item!r}")
        variables[name] = value
    if args.system and args.prompt_template:
        raise UsageError("give --system or --prompt-template, not both")
    try:
        system: Any = args.system or default_system
        if args.prompt_template:
            system = PromptTemplate.from_file(args.prompt_template)
        prompt = Prompt(
            system=system,
            examples=args.examples or (),
            think_first=args.think_first,
            tools_in_prompt=args.tools_in_prompt,
            variables=variables,
        )
        prompt.bind(registry.openai_schemas())  # fail here, with a usage error
    except PromptError as exc:
        raise UsageError(str(exc)) from None
    retrieval: Any = None
    if args.rag:
        from runtime.rag import RagIndex, RetrievalContext, search_docs_tool

        try:
            index = RagIndex.load(args.rag)
            if args.rag_mode == "tool":
                registry.add(search_docs_tool(index, k=args.rag_k, min_score=args.rag_min_score))
            else:
                retrieval = RetrievalContext(index, k=args.rag_k, min_score=args.rag_min_score)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--rag {args.rag}: {exc}") from None
    similar = getattr(args, "similar_requests", None)
    if similar is None:
        from runtime.model.adapters import similar_requests_of

        similar = similar_requests_of(adapter)
    if similar < 0:
        raise UsageError("--similar-requests must be 0 or more")
    if similar:
        if retrieval is not None:
            raise UsageError(
                "--similar-requests and --rag context cannot both go before the request"
            )
        from runtime.finetune.similar import bank_for_tools

        retrieval = bank_for_tools(registry.openai_schemas(), k=similar)
    tool_choice = getattr(args, "tool_choice", None)
    if tool_choice:
        from runtime.agent import check_tool_choice

        try:
            check_tool_choice(tool_choice, registry)
        except ValueError as exc:
            raise UsageError(str(exc).replace("tool_choice", "--tool-choice", 1)) from None
    return PromptChoice(prompt, retrieval)
