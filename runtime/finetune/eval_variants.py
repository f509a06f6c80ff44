"""Compare the levers on one held-out set: prompt, presets, retrieval, adapter.

A `Variant` is one way of asking a served model: a prompt (zero-shot,
few-shot, think-first, tools in the prompt), a sampling preset, optional
retrieved context, and the target (base model or adapter) it runs on. Every
variant answers the same items; the report holds each one's rates, latency
and prompt size, paired McNemar tests against the first variant, and a
Markdown table, so a team sees which combination wins for its tools before it
pays for fine-tuning.

Each item is asked the way `Agent` asks: the same `RequestBuilder` composes
the prompt, renders the tools and picks the request fields, so a variant's
score is the score of an agent configured the same way.

Spec syntax (`agentrt eval --variant`):

    LABEL[:key=value,key=value...]
    keys: target=LABEL  examples=FILE  template=FILE  think=1  tools_in_prompt=1
          preset=precise|balanced|creative  rag=INDEX_FILE  rag_k=N  rag_min_score=X
          similar=K  (the K synthesised requests most like each item, before it)
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from runtime.finetune.eval_targets import Target, describe_target
from runtime.finetune.evaluate import (
    EvalItem,
    ItemScore,
    PredictedCall,
    Prediction,
    paired_comparison,
    score_item,
    summarize,
)
from runtime.model.call_form import CallForm
from runtime.model.settings import SamplingSettings
from runtime.prompting import ContextProvider, Prompt, PromptTemplate, RequestBuilder
from runtime.stats import percentile

__all__ = [
    "Variant",
    "VariantRun",
    "check_variants",
    "compare_variants",
    "markdown_table",
    "parse_variant",
    "predict_variant",
]

_KEYS = {
    "target",
    "examples",
    "template",
    "think",
    "tools_in_prompt",
    "preset",
    "rag",
    "rag_k",
    "rag_min_score",
    "similar",
}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way of asking a model.

    Attributes:
        label: Name in the report.
        target: Label of the served model it runs on (default: the first).
        prompt: How the request is composed (default: the items as they are).
        preset: Sampling preset; default greedy decoding. A seed of 0 is added
            when the preset has none, so runs repeat.
        rag: A retrieval index file; its passages go before the request.
        rag_k: Passages per request.
        rag_min_score: Cosine threshold for a passage.
        similar: Show the K worked requests most like each item, synthesised
            from the item's tools (`runtime.finetune.similar`); 0 for none.
    """

    label: str
    target: str | None = None
    prompt: Prompt = dataclasses.field(default_factory=Prompt)
    preset: str | None = None
    rag: Path | None = None
    rag_k: int = 4
    rag_min_score: float = 0.3
    similar: int = 0

    def sampling(self, max_tokens: int) -> SamplingSettings:
        """The settings every request of this variant is sent with."""
        if self.preset:
            base = SamplingSettings.preset(self.preset)
            return base.updated(max_tokens=max_tokens, seed=base.seed or 0)
        return SamplingSettings(temperature=0.0, max_tokens=max_tokens, seed=0)

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary of the levers this variant pulls."""
        prompt = self.prompt
        return {
            "target": self.target,
            "system": "template" if isinstance(prompt.system, PromptTemplate) else prompt.system,
            "examples": str(prompt.examples) if isinstance(prompt.examples, (str, Path)) else None,
            "think_first": bool(prompt.think_first),
            "tools_in_prompt": prompt.tools_in_prompt,
            "preset": self.preset or "greedy",
            "rag": str(self.rag) if self.rag else None,
            "similar": self.similar,
        }


def parse_variant(spec: str) -> Variant:
    """Parse `LABEL[:key=value,...]` (see the module docstring).

    Raises:
        ValueError: With the offending key or value named.
    """
    label, _, rest = spec.partition(":")
    label = label.strip()
    if not label:
        raise ValueError(f"variant {spec!r} has no label")
    values: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in _KEYS:
            raise ValueError(
                f"variant {label!r}: {part!r} is not key=value with a key in {sorted(_KEYS)}"
            )
        values[key] = value.strip()
    template = PromptTemplate.from_file(values["template"]) if "template" in values else None
    prompt = Prompt(
        system=template,
        examples=Path(values["examples"]) if "examples" in values else (),
        think_first=_flag(values.get("think", "0"), "think"),
        tools_in_prompt=_flag(values.get("tools_in_prompt", "0"), "tools_in_prompt"),
    )
    if "preset" in values:
        SamplingSettings.preset(values["preset"])  # unknown names fail here
    return Variant(
        label=label,
        target=values.get("target"),
        prompt=prompt,
        preset=values.get("preset"),
        rag=Path(values["rag"]) if "rag" in values else None,
        rag_k=int(values.get("rag_k", 4)),
        rag_min_score=float(values.get("rag_min_score", 0.3)),
        similar=int(values.get("similar", 0)),
    )


def _flag(value: str, key: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{key}={value!r}: use 1 or 0")


@dataclasses.dataclass(frozen=True, slots=True)
class VariantRun:
    """One item's prediction with its cost."""

    prediction: Prediction
    seconds: float
    prompt_tokens: int
    completion_tokens: int
    reasoning: str = ""


class _Prepared:
    """A variant's per-run state: the agent's request builder per tool set, settings, retriever."""

    def __init__(self, variant: Variant, max_tokens: int) -> None:
        self.variant = variant
        self.settings = variant.sampling(max_tokens)
        self._builders: dict[str, RequestBuilder] = {}
        self.retrieval: ContextProvider | None = None
        self._banks: dict[str, ContextProvider] = {}
        if variant.rag is not None:
            from runtime.rag import RagIndex, RetrievalContext

            self.retrieval = RetrievalContext(
                RagIndex.load(variant.rag), k=variant.rag_k, min_score=variant.rag_min_score
            )

    def retrieval_for(self, tools: Sequence[Mapping[str, Any]]) -> ContextProvider | None:
        """The variant's context for items offering `tools`."""
        if not self.variant.similar:
            return self.retrieval
        from runtime.finetune.similar import bank_for_tools

        key = json.dumps(tools, sort_keys=True)
        if key not in self._banks:
            self._banks[key] = bank_for_tools(tools, k=self.variant.similar)
        return self._banks[key]

    def builder(self, tools: Sequence[Mapping[str, Any]]) -> RequestBuilder:
        key = json.dumps(tools, sort_keys=True)
        if key not in self._builders:
            self._builders[key] = RequestBuilder(self.variant.prompt, tools)
        return self._builders[key]


async def predict_variant(
    base_url: str,
    model: str,
    items: Sequence[EvalItem],
    variant: Variant,
    *,
    max_tokens: int = 256,
    concurrency: int = 1,
    progress: bool = True,
    timeout_s: float = 300.0,
    api_key: str = "not-needed",
    call_form: CallForm = "plain",
) -> list[VariantRun]:
    """Ask for the next turn of every item, composed the variant's way.

    `timeout_s` bounds one request (a busy CPU server can take minutes on a long prompt);
    `api_key` is sent as a bearer token (a vLLM started with `--api-key`); `call_form`
    is the form the served adapter writes calls in (`runtime.model.call_form`).
    """
    from runtime.model import OpenAICompatibleClient
    from runtime.model.client import ModelError

    prepared = _Prepared(variant, max_tokens)
    client = OpenAICompatibleClient(
        base_url, model, timeout_s=timeout_s, api_key=api_key, call_form=call_form
    )
    semaphore = asyncio.Semaphore(concurrency)
    done = 0

    async def one(item: EvalItem) -> VariantRun:
        nonlocal done
        async with semaphore:
            # The agent's own request building: the same prompt composition,
            # tools rendering and request fields as `Agent` sends.
            builder = prepared.builder(item.tools)
            history = await builder.opening(item.messages, prepared.retrieval_for(item.tools))
            request = builder.next(history, prepared.settings)
            started = time.perf_counter()
            try:
                turn = await client.complete(request.messages, request.tools, request.settings)
                read = builder.read(turn)
                run = VariantRun(
                    Prediction(
                        read.turn.text,
                        tuple(PredictedCall(c.name, c.arguments) for c in read.turn.tool_calls),
                    ),
                    time.perf_counter() - started,
                    turn.usage.prompt_tokens,
                    turn.usage.completion_tokens,
                    read.reasoning,
                )
            except ModelError as exc:
                run = VariantRun(
                    Prediction("", (), error=f"{exc.kind}: {exc}"),
                    time.perf_counter() - started,
                    0,
                    0,
                )
            done += 1
            if progress and (done % 20 == 0 or done == len(items)):
                print(f"  {variant.label}: {done}/{len(items)}", flush=True)
            return run

    try:
        return list(await asyncio.gather(*(one(item) for item in items)))
    finally:
        await client.aclose()


def check_variants(
    targets: Sequence[Target], variants: Sequence[Variant], items: Sequence[EvalItem]
) -> None:
    """Fail before any server starts: no target, an unknown target, a duplicate
    label, a missing index, or few-shot examples that do not fit the items' tools.

    Raises:
        ValueError: naming the variant (`PromptError` for examples).
    """
    if not targets:
        raise ValueError("no model to evaluate")
    labels = {target.label for target in targets}
    names = [v.label for v in variants]
    if len(set(names)) != len(names):
        raise ValueError("variant labels must be unique")
    tool_sets = {json.dumps(item.tools, sort_keys=True): item.tools for item in items}
    for variant in variants:
        if variant.target is not None and variant.target not in labels:
            raise ValueError(
                f"variant {variant.label!r} names target {variant.target!r}; "
                f"targets: {', '.join(sorted(labels))}"
            )
        if variant.rag is not None and not variant.rag.exists():
            raise ValueError(f"variant {variant.label!r}: no index at {variant.rag}")
        if variant.similar < 0 or (variant.similar and variant.rag is not None):
            raise ValueError(
                f"variant {variant.label!r}: similar=K needs K >= 0 and cannot be combined with rag"
            )
        for tools in tool_sets.values():
            RequestBuilder(variant.prompt, tools)


def compare_variants(
    targets: Sequence[Target],
    variants: Sequence[Variant],
    items: Sequence[EvalItem],
    *,
    max_tokens: int = 256,
    keep_predictions: bool = True,
    concurrency: int = 1,
    timeout_s: float = 300.0,
) -> dict[str, Any]:
    """Run every variant on its target (each server started once) and compare.

    Returns:
        The report: per-variant summary, latency and tokens; McNemar tests of
        each variant against the first; `table` in Markdown.
    """
    check_variants(targets, variants, items)
    by_label = {target.label: target for target in targets}
    labels = [v.label for v in variants]
    runs: dict[str, list[VariantRun]] = {}
    seconds: dict[str, float] = {}
    for target in targets:
        mine = [v for v in variants if (v.target or targets[0].label) == target.label]
        if not mine:
            continue
        with target.serve() as (base_url, model):
            for variant in mine:
                started = time.monotonic()
                runs[variant.label] = asyncio.run(
                    predict_variant(
                        base_url,
                        model,
                        items,
                        variant,
                        max_tokens=max_tokens,
                        concurrency=concurrency,
                        timeout_s=timeout_s,
                        # the embedded server turns its adapter's form back itself
                        call_form=getattr(target, "call_form", "plain"),
                    )
                )
                seconds[variant.label] = time.monotonic() - started
    report: dict[str, Any] = {"items": len(items), "models": {}, "comparisons": []}
    scores: dict[str, list[ItemScore]] = {}
    for variant in variants:
        results = runs[variant.label]
        scores[variant.label] = [
            score_item(item, r.prediction) for item, r in zip(items, results, strict=True)
        ]
        target = by_label[variant.target or targets[0].label]
        report["models"][variant.label] = _entry(
            variant, target, items, results, scores[variant.label], seconds[variant.label]
        )
        if not keep_predictions:
            report["models"][variant.label].pop("predictions")
    for other in labels[1:]:
        report["comparisons"].append(
            {
                "a": labels[0],
                "b": other,
                "tests": [
                    paired_comparison(scores[labels[0]], scores[other], metric=m)
                    for m in ("full_call", "abstained", "correct")
                ],
            }
        )
    report["table"] = markdown_table(report)
    return report


def _entry(
    variant: Variant,
    target: Target,
    items: Sequence[EvalItem],
    results: Sequence[VariantRun],
    scores: Sequence[ItemScore],
    seconds: float,
) -> dict[str, Any]:
    latencies = sorted(r.seconds for r in results)
    entry: dict[str, Any] = {
        "target": describe_target(target),
        "variant": variant.describe(),
        "seconds": round(seconds, 1),
        "errors": sum(1 for r in results if r.prediction.error),
        "latency_s": {
            "p50": _rounded(lambda xs: percentile(xs, 0.5), latencies, 3),
            "p95": _rounded(lambda xs: percentile(xs, 0.95), latencies, 3),
            "mean": _rounded(statistics.fmean, latencies, 3),
        },
        "prompt_tokens_mean": _rounded(statistics.fmean, [r.prompt_tokens for r in results], 1),
        "completion_tokens_mean": _rounded(
            statistics.fmean, [r.completion_tokens for r in results], 1
        ),
        "summary": summarize(scores),
        "predictions": [
            {
                "id": item.id,
                "text": r.prediction.text[:400],
                "calls": [dataclasses.asdict(c) for c in r.prediction.calls],
                "reasoning": r.reasoning[:400],
                "correct": s.correct,
                "reasons": list(s.reasons),
            }
            for item, r, s in zip(items, results, scores, strict=True)
        ],
    }
    return entry


def _rounded(
    statistic: Callable[[list[float]], float], values: Sequence[float], digits: int
) -> float | None:
    """`statistic` of sorted `values`, rounded; None when there are none."""
    return round(statistic(sorted(values)), digits) if values else None


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def markdown_table(report: Mapping[str, Any]) -> str:
    """One row per variant: accuracy, abstention, answers, latency, prompt size."""
    rows = [
        "| variant | target | levers | full-call | abstention | answer after result | "
        "all items | p50 latency | prompt tokens |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    first = next(iter(report["models"]), None)
    pvalues = {c["b"]: c["tests"] for c in report.get("comparisons", [])}
    for label, entry in report["models"].items():
        summary = entry["summary"]
        levers = _levers(entry.get("variant", {}))
        overall = _pct(summary.get("overall"))
        if label != first and label in pvalues:
            test = next(t for t in pvalues[label] if t["metric"] == "correct")
            overall += f" (p={test['p_value']:.3f})"
        latency = entry.get("latency_s", {}).get("p50")
        rows.append(
            f"| {label} | {entry['target'].get('label', '')} | {levers} | "
            f"{_pct(summary.get('full_call'))} | {_pct(summary.get('abstention'))} | "
            f"{_pct(summary.get('answer_after_result'))} | {overall} | "
            f"{'–' if latency is None else f'{latency:.2f} s'} | "
            f"{entry.get('prompt_tokens_mean', '–')} |"
        )
    return "\n".join(rows) + "\n"


def _levers(described: Mapping[str, Any]) -> str:
    parts = []
    if described.get("system"):
        parts.append("system prompt")
    if described.get("examples"):
        parts.append("few-shot")
    if described.get("think_first"):
        parts.append("think-first")
    if described.get("tools_in_prompt"):
        parts.append("tools in prompt")
    if described.get("preset") and described["preset"] != "greedy":
        parts.append(f"preset {described['preset']}")
    if described.get("rag"):
        parts.append("RAG")
    if described.get("similar"):
        parts.append(f"{described['similar']} similar requests")
    return ", ".join(parts) or "zero-shot"
