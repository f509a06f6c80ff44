"""BFCL-style scoring of model replies, and the paired test between two models.

An `EvalItem` is a prompt (messages + tools) and what the next assistant turn
should do: propose `expected` calls, or (when `expected` is empty) answer in
text without any call. Every predicted reply is scored on:

- **well-formed**: at least one call, each with a name and arguments that are
  a strict JSON object (no NaN, no duplicate keys: the runtime's own parser).
- **right tool**: the multiset of called names equals the expected one.
- **arguments correct**: right tool, and the calls can be paired one-to-one
  with the expected calls, *in any order*, such that in each pair every
  required argument is present, no argument is extra (an optional argument
  left out of the expectation is allowed only at its schema default), the
  arguments validate against the tool's JSON Schema (types, enums), and each
  value matches an accepted value: numbers numerically (5 == 5.0), strings
  after Unicode NFKC, case folding and removing whitespace, lists and
  objects element by element.
- **full call**: well-formed and arguments correct (the headline accuracy).
- **abstention** (items expecting no call): no call at all, not even a
  malformed `<tool_call>` block.
- **answer after result** (`check="answer"`: the prompt ends with a tool
  result): a non-empty text answer, no call, no `<tool_call>` or
  `<tool_response>` markup echoed.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import jsonschema

from runtime.arguments import StrictJSONError, parse_strict_json

__all__ = [
    "MISSING_OK",
    "EvalItem",
    "ExpectedCall",
    "ItemScore",
    "PredictedCall",
    "Prediction",
    "mcnemar_exact",
    "paired_comparison",
    "score_item",
    "summarize",
    "values_match",
]

# In an accepted-values list, this marks an argument that may be left out (BFCL's "").
MISSING_OK = ""
_MARKUP = re.compile(r"</?tool_(?:call|response)>")


@dataclasses.dataclass(frozen=True, slots=True)
class ExpectedCall:
    """A call the model should make.

    Attributes:
        name: Tool name.
        arguments: Argument -> accepted values (any one matches). `MISSING_OK`
            in the list means the argument may be omitted.
    """

    name: str
    arguments: dict[str, list[Any]]

    @classmethod
    def exact(cls, name: str, arguments: Mapping[str, Any]) -> ExpectedCall:
        """An expectation with exactly one accepted value per argument."""
        return cls(name, {key: [value] for key, value in arguments.items()})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}


@dataclasses.dataclass(frozen=True, slots=True)
class EvalItem:
    """One scored prompt.

    Attributes:
        id: Stable identifier.
        messages: The prompt history.
        tools: OpenAI `tools` entries offered to the model.
        expected: Calls expected in the next turn; empty = no call should be made.
        category: Reporting group (`single`, `parallel`, `no_tool`, `answer`, BFCL names).
        check: `call` (score the calls / abstention) or `answer` (text after a result).
    """

    id: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    expected: list[ExpectedCall]
    category: str
    check: Literal["call", "answer"] = "call"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "messages": self.messages,
            "tools": self.tools,
            "expected": [call.to_dict() for call in self.expected],
            "category": self.category,
            "check": self.check,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalItem:
        return cls(
            id=str(data["id"]),
            messages=list(data["messages"]),
            tools=list(data.get("tools", [])),
            expected=[ExpectedCall(c["name"], dict(c["arguments"])) for c in data["expected"]],
            category=str(data.get("category", "single")),
            check=data.get("check", "call"),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class PredictedCall:
    """A call as the model proposed it (arguments as the raw JSON text)."""

    name: str
    arguments: str


@dataclasses.dataclass(frozen=True, slots=True)
class Prediction:
    """A model's reply to one item (or the error that prevented one)."""

    text: str
    calls: tuple[PredictedCall, ...]
    error: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ItemScore:
    """How one reply scored. Flags that do not apply to the item are False."""

    id: str
    category: str
    expects_call: bool
    well_formed: bool
    right_tool: bool
    args_correct: bool
    full_call: bool
    abstained: bool
    correct: bool
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _normal_string(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).casefold()


def values_match(predicted: Any, expected: Any) -> bool:
    """Compare one predicted value with one accepted value (see the module docstring)."""
    if isinstance(expected, bool) or isinstance(predicted, bool):
        return type(predicted) is type(expected) and predicted == expected
    if isinstance(expected, int | float) and isinstance(predicted, int | float):
        return math.isclose(float(predicted), float(expected), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(expected, str) and isinstance(predicted, str):
        return _normal_string(predicted) == _normal_string(expected)
    if isinstance(expected, list | tuple) and isinstance(predicted, list | tuple):
        return len(expected) == len(predicted) and all(
            values_match(p, e) for p, e in zip(predicted, expected, strict=True)
        )
    if isinstance(expected, Mapping) and isinstance(predicted, Mapping):
        return set(expected) == set(predicted) and all(
            values_match(predicted[k], expected[k]) for k in expected
        )
    return bool(predicted == expected)


def _tool_schemas(tools: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    for tool in tools:
        function = tool.get("function", tool)
        out[str(function.get("name"))] = function.get("parameters") or {}
    return out


def _args_problem(
    arguments: Mapping[str, Any], expected: ExpectedCall, schema: Mapping[str, Any] | None
) -> str | None:
    """Why `arguments` do not satisfy `expected`, or None when they do."""
    properties = (schema or {}).get("properties", {})
    for name, accepted in expected.arguments.items():
        if name not in arguments:
            default = properties.get(name, {}).get("default", _NO_DEFAULT)
            at_default = default is not _NO_DEFAULT and any(
                values_match(default, v) for v in accepted
            )
            if MISSING_OK not in accepted and not at_default:
                return f"{expected.name}: missing argument {name!r}"
            continue
        real = [value for value in accepted if not (isinstance(value, str) and value == MISSING_OK)]
        if real and not any(values_match(arguments[name], value) for value in real):
            return f"{expected.name}: {name}={json.dumps(arguments[name])[:60]} is not {real[:3]}"
        if not real:
            return f"{expected.name}: {name} should be left out"
    for name, value in arguments.items():
        if name in expected.arguments:
            continue
        default = properties.get(name, {}).get("default", _NO_DEFAULT)
        if default is _NO_DEFAULT or not values_match(value, default):
            return f"{expected.name}: extra argument {name!r}"
    if schema:
        try:
            jsonschema.validate(dict(arguments), dict(schema))
        except jsonschema.ValidationError as exc:
            return f"{expected.name}: schema: {exc.message[:80]}"
        except jsonschema.SchemaError:
            pass  # a broken schema (some BFCL entries) cannot judge types
    return None


_NO_DEFAULT = object()


def _parse_calls(prediction: Prediction) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    parsed: list[tuple[str, dict[str, Any]]] = []
    problems: list[str] = []
    for call in prediction.calls:
        if not call.name:
            problems.append("a call has no tool name")
            continue
        try:
            value = parse_strict_json(call.arguments or "{}")
        except (StrictJSONError, ValueError, RecursionError) as exc:
            problems.append(f"{call.name}: arguments are not strict JSON ({str(exc)[:60]})")
            continue
        if not isinstance(value, dict):
            problems.append(f"{call.name}: arguments are not a JSON object")
            continue
        parsed.append((call.name, value))
    return parsed, problems


def _match_calls(
    parsed: list[tuple[str, dict[str, Any]]],
    expected: list[ExpectedCall],
    schemas: Mapping[str, Mapping[str, Any]],
) -> str | None:
    """None when some one-to-one pairing (any order) has every pair correct."""
    first_problem: str | None = None
    if len(expected) > 7:  # factorial blow-up guard: compare in order
        orders: Iterable[tuple[int, ...]] = [tuple(range(len(expected)))]
    else:
        orders = itertools.permutations(range(len(expected)))
    for order in orders:
        problem = None
        for (name, arguments), index in zip(parsed, order, strict=True):
            target = expected[index]
            if name != target.name:
                problem = f"{name} where {target.name} was expected"
                break
            problem = _args_problem(arguments, target, schemas.get(name))
            if problem:
                break
        if problem is None:
            return None
        first_problem = first_problem or problem
    return first_problem or "no pairing of calls matches"


def score_item(item: EvalItem, prediction: Prediction) -> ItemScore:
    """Score one reply against one item."""
    calls = prediction.calls
    reasons: list[str] = [f"error: {prediction.error}"] if prediction.error else []
    abstained = not calls and prediction.error is None
    if item.check == "answer" or not item.expected:
        correct = abstained
        if calls:
            reasons.append(f"called {', '.join(c.name or '?' for c in calls)}")
        if item.check == "answer" and abstained:
            if not prediction.text.strip():
                correct, reasons = False, [*reasons, "empty answer"]
            elif _MARKUP.search(prediction.text):
                correct, reasons = False, [*reasons, "echoed tool markup"]
        return ItemScore(
            item.id, item.category, False, False, False, False, False, abstained, correct,
            tuple(reasons),
        )  # fmt: skip
    parsed, problems = _parse_calls(prediction)
    reasons.extend(problems)
    well_formed = bool(calls) and not problems
    predicted_names = sorted(name for name, _ in parsed) if well_formed else []
    right_tool = well_formed and predicted_names == sorted(c.name for c in item.expected)
    if not calls:
        reasons.append("no call")
    elif well_formed and not right_tool:
        reasons.append(
            f"called {predicted_names}, expected {sorted(c.name for c in item.expected)}"
        )
    args_correct = False
    if right_tool:
        problem = _match_calls(parsed, item.expected, _tool_schemas(item.tools))
        args_correct = problem is None
        if problem:
            reasons.append(problem)
    full_call = well_formed and args_correct
    return ItemScore(
        item.id, item.category, True, well_formed, right_tool, args_correct, full_call,
        abstained, full_call, tuple(reasons),
    )  # fmt: skip


def _rate(values: list[bool]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def summarize(scores: Sequence[ItemScore]) -> dict[str, Any]:
    """Rates over the items each metric applies to, overall and by category."""
    calls = [s for s in scores if s.expects_call]
    no_call = [s for s in scores if not s.expects_call and s.category != "answer"]
    answers = [s for s in scores if s.category == "answer"]
    summary: dict[str, Any] = {
        "items": len(scores),
        "call_items": len(calls),
        "no_call_items": len(no_call),
        "answer_items": len(answers),
        "well_formed": _rate([s.well_formed for s in calls]),
        "right_tool": _rate([s.right_tool for s in calls]),
        "args_correct": _rate([s.args_correct for s in calls]),
        "full_call": _rate([s.full_call for s in calls]),
        "abstention": _rate([s.abstained for s in no_call]),
        "answer_after_result": _rate([s.correct for s in answers]),
        "overall": _rate([s.correct for s in scores]),
    }
    by_category: dict[str, Any] = {}
    for category in sorted({s.category for s in scores}):
        members = [s for s in scores if s.category == category]
        by_category[category] = {
            "items": len(members),
            "correct": _rate([s.correct for s in members]),
        }
    summary["by_category"] = by_category
    return summary


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pair counts."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    k = min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / (1 << n)
    return min(1.0, 2 * tail)


def paired_comparison(
    a: Sequence[ItemScore], b: Sequence[ItemScore], *, metric: str = "correct"
) -> dict[str, Any]:
    """Compare two models item by item on one metric (exact McNemar test).

    Args:
        a: Scores of model A (e.g. the base), in item order.
        b: Scores of model B (e.g. the tuned adapter), same items.
        metric: An `ItemScore` flag; items it does not apply to are skipped
            (`full_call` uses call items, `abstained` items expecting none).
    """
    if [s.id for s in a] != [s.id for s in b]:
        raise ValueError("paired comparison needs the same items in the same order")
    pairs = list(zip(a, b, strict=True))
    if metric == "full_call":
        pairs = [(x, y) for x, y in pairs if x.expects_call]
    elif metric == "abstained":
        pairs = [(x, y) for x, y in pairs if not x.expects_call and x.category != "answer"]
    a_only = sum(1 for x, y in pairs if getattr(x, metric) and not getattr(y, metric))
    b_only = sum(1 for x, y in pairs if getattr(y, metric) and not getattr(x, metric))
    return {
        "metric": metric,
        "items": len(pairs),
        "a_rate": _rate([bool(getattr(x, metric)) for x, _ in pairs]),
        "b_rate": _rate([bool(getattr(y, metric)) for _, y in pairs]),
        "a_only": a_only,
        "b_only": b_only,
        "p_value": round(mcnemar_exact(a_only, b_only), 6),
    }
