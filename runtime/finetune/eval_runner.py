"""Run held-out items against served models, compare them, write JSON and a chart.

Items come from a dataset in the training format (`items_from_examples`: the
first assistant turn is the expectation; a trajectory also yields an
"answer after the tool result" item) or from BFCL's own data files inside the
`bfcl-eval` package (`load_bfcl`: simple, multiple, irrelevance categories).

The models are targets (`eval_targets`: a server someone runs, or the
embedded llama.cpp server started for the run); asking them and comparing the
answers is `eval_variants`' job, which `predict` and `compare` call with one
plain variant per target.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from runtime.finetune.dataset_format import expected_turn
from runtime.finetune.eval_targets import LocalTarget, RemoteTarget, Target
from runtime.finetune.eval_variants import Variant, compare_variants, predict_variant
from runtime.finetune.evaluate import (
    MISSING_OK,
    EvalItem,
    ExpectedCall,
    Prediction,
)

__all__ = [
    "BFCL_CATEGORIES",
    "LocalTarget",
    "RemoteTarget",
    "bfcl_data_dir",
    "compare",
    "items_from_examples",
    "load_bfcl",
    "plot_comparison",
    "predict",
]

BFCL_CATEGORIES = {
    "simple": "BFCL_v4_simple_python.json",
    "multiple": "BFCL_v4_multiple.json",
    "irrelevance": "BFCL_v4_irrelevance.json",
    "parallel": "BFCL_v4_parallel.json",
}


# -- items -----------------------------------------------------------------------


def items_from_examples(examples: Sequence[Mapping[str, Any]]) -> list[EvalItem]:
    """Turn dataset examples into items.

    The prompt is everything before the first assistant turn and the
    expectation is that turn's calls (none: an abstention item). Every
    argument the example gives must be given (or left at its schema default);
    others may appear only at their default. A trajectory adds an `answer` item:
    the history up to the tool result, expecting a text answer.
    """
    items: list[EvalItem] = []
    for index, example in enumerate(examples):
        tools = list(example.get("tools") or [])
        kind = str(example.get("metadata", {}).get("kind", ""))
        prompt, calls = expected_turn(example)
        base_id = str(example.get("metadata", {}).get("id", f"item-{index:04d}"))
        expected = [ExpectedCall.exact(name, args) for name, args in calls]
        category = kind or ("no_tool" if not calls else "parallel" if len(calls) > 1 else "single")
        if category == "trajectory":
            category = "single"
        items.append(EvalItem(base_id, prompt, tools, expected, category))
        messages = list(example["messages"])
        tool_at = [i for i, m in enumerate(messages) if m.get("role") == "tool"]
        if calls and tool_at and tool_at[-1] + 1 < len(messages):
            history = messages[: tool_at[-1] + 1]
            items.append(EvalItem(f"{base_id}-answer", history, tools, [], "answer", "answer"))
    return items


def bfcl_data_dir() -> Path:
    """`bfcl_eval/data` inside the installed `bfcl-eval` wheel (read directly:
    importing its checker pulls in many provider SDKs)."""
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "BFCL data needs the bfcl-eval package: pip install --no-deps bfcl-eval"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


_BFCL_TYPES = {
    "dict": "object",
    "float": "number",
    "tuple": "array",
    "list": "array",
    "bool": "boolean",
}


def _bfcl_schema(node: Any) -> Any:
    """BFCL's Python-flavoured schemas as JSON Schema (`dict` -> object, `float` -> number)."""
    if isinstance(node, dict):
        out = {k: _bfcl_schema(v) for k, v in node.items() if k != "optional"}
        kind = out.get("type")
        if kind == "any":
            del out["type"]
        elif isinstance(kind, str):
            out["type"] = _BFCL_TYPES.get(kind, kind)
        return out
    if isinstance(node, list):
        return [_bfcl_schema(item) for item in node]
    return node


def _openai_name(name: str) -> str:
    return name.replace(".", "_")


def load_bfcl(
    categories: Sequence[str], *, limit: int | None = None, data_dir: Path | None = None
) -> list[EvalItem]:
    """Read BFCL questions and possible answers as items.

    Function names with dots become underscores (as BFCL does for OpenAI-style
    models); `""` in an accepted-values list means the argument may be left out.
    """
    data_dir = data_dir or bfcl_data_dir()
    items: list[EvalItem] = []
    for category in categories:
        if category not in BFCL_CATEGORIES:
            raise ValueError(
                f"unknown BFCL category {category!r}; pick from {sorted(BFCL_CATEGORIES)}"
            )
        filename = BFCL_CATEGORIES[category]
        questions = _read_lines(data_dir / filename)
        answers: dict[str, Any] = {}
        answer_file = data_dir / "possible_answer" / filename
        if answer_file.exists():
            answers = {row["id"]: row["ground_truth"] for row in _read_lines(answer_file)}
        for row in questions[:limit]:
            tools = [
                {
                    "type": "function",
                    "function": {
                        "name": _openai_name(f["name"]),
                        "description": f.get("description", ""),
                        "parameters": _bfcl_schema(f.get("parameters", {})),
                    },
                }
                for f in row["function"]
            ]
            expected = [
                ExpectedCall(_openai_name(name), {k: list(v) for k, v in args.items()})
                for call in answers.get(row["id"], [])
                for name, args in call.items()
            ]
            messages = [dict(m) for m in row["question"][0]]
            items.append(EvalItem(row["id"], messages, tools, expected, f"bfcl_{category}"))
    return items


def _read_lines(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_items(path: Path) -> list[EvalItem]:
    """Read items from a JSON-lines file of examples or of saved `EvalItem`s."""
    rows = _read_lines(path)
    if rows and "expected" in rows[0]:
        return [EvalItem.from_dict(row) for row in rows]
    return items_from_examples(rows)


async def predict(
    base_url: str,
    model: str,
    items: Sequence[EvalItem],
    *,
    max_tokens: int = 256,
    concurrency: int = 1,
    progress: bool = True,
) -> list[Prediction]:
    """Ask the model for the next turn of every item (greedy, items as they are)."""
    runs = await predict_variant(
        base_url,
        model,
        items,
        Variant(label=model),
        max_tokens=max_tokens,
        concurrency=concurrency,
        progress=progress,
    )
    return [run.prediction for run in runs]


def compare(
    targets: Sequence[Target],
    items: Sequence[EvalItem],
    *,
    max_tokens: int = 256,
    keep_predictions: bool = True,
) -> dict[str, Any]:
    """Score every target on the same items, as they are; pair each later target
    with the first. `eval_variants.compare_variants` adds prompt, preset and
    retrieval levers.

    Returns:
        The report: per-model summaries, latency, paired McNemar tests against
        the first model (full call, abstention, overall) and, optionally,
        every prediction with its score.
    """
    variants = [Variant(label=t.label, target=t.label) for t in targets]
    return compare_variants(
        targets, variants, items, max_tokens=max_tokens, keep_predictions=keep_predictions
    )


METRICS = (
    "well_formed",
    "right_tool",
    "args_correct",
    "full_call",
    "abstention",
    "answer_after_result",
)


def plot_comparison(report: Mapping[str, Any], path: Path, *, title: str = "") -> Path:
    """A grouped bar chart of each model's rates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(report["models"])
    metrics = [
        m for m in METRICS if any(report["models"][x]["summary"].get(m) is not None for x in models)
    ]
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(1.6 * len(metrics) + 3.5, 4.2))
    for index, label in enumerate(models):
        summary = report["models"][label]["summary"]
        values = [100 * (summary.get(m) or 0.0) for m in metrics]
        xs = [i + (index - (len(models) - 1) / 2) * width for i in range(len(metrics))]
        bars = ax.bar(xs, values, width, label=label)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(range(len(metrics)), [m.replace("_", "\n") for m in metrics], fontsize=8)
    ax.set_ylabel("% of items")
    ax.set_ylim(0, 110)
    ax.axhline(90, color="grey", linewidth=0.8, linestyle="--")
    ax.set_title(title or f"{report['items']} held-out items")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def no_call_allowed(values: list[Any]) -> bool:
    """True when an accepted-values list lets the argument be left out."""
    return MISSING_OK in values
