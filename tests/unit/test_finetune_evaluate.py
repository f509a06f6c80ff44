"""The evaluator scores hand-made predictions exactly as specified."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tools
from runtime.finetune.eval_runner import items_from_examples, load_bfcl
from runtime.finetune.evaluate import (
    MISSING_OK,
    EvalItem,
    ExpectedCall,
    PredictedCall,
    Prediction,
    mcnemar_exact,
    paired_comparison,
    score_item,
    summarize,
    values_match,
)
from runtime.tools import ToolRegistry

TOOLS = ToolRegistry.from_module(tools).openai_schemas()
USER = [{"role": "user", "content": "x"}]


def item(*expected: ExpectedCall, category: str = "single", check: str = "call") -> EvalItem:
    return EvalItem("i", USER, TOOLS, list(expected), category, check)  # type: ignore[arg-type]


def pred(*calls: tuple[str, object], text: str = "") -> Prediction:
    return Prediction(
        text,
        tuple(
            PredictedCall(name, args if isinstance(args, str) else json.dumps(args))
            for name, args in calls
        ),
    )


CONVERT = ExpectedCall.exact("convert_units", {"value": 5, "from_unit": "km", "to_unit": "mi"})
CALC = ExpectedCall.exact("calculate", {"expression": "12 * 7"})


def test_exact_call_is_fully_correct() -> None:
    score = score_item(
        item(CONVERT), pred(("convert_units", {"value": 5, "from_unit": "km", "to_unit": "mi"}))
    )
    assert (score.well_formed, score.right_tool, score.args_correct, score.full_call) == (True,) * 4
    assert score.correct and not score.abstained


def test_numbers_compare_numerically_and_strings_normalised() -> None:
    score = score_item(
        item(CONVERT), pred(("convert_units", {"value": 5.0, "from_unit": "km", "to_unit": "mi"}))
    )
    assert score.full_call
    assert score_item(item(CALC), pred(("calculate", {"expression": "12*7"}))).full_call
    assert score_item(item(CALC), pred(("calculate", {"expression": " 12 * 7 "}))).full_call
    assert not score_item(item(CALC), pred(("calculate", {"expression": "7 * 12"}))).full_call
    assert values_match("Ｋm", "km")  # NFKC + casefold
    assert not values_match(True, 1) and not values_match(1, True)
    assert values_match([1, "A b"], [1.0, "ab"]) and not values_match([1], [1, 2])


def test_wrong_tool_missing_and_extra_arguments() -> None:
    wrong_tool = score_item(item(CALC), pred(("run_python", {"code": "print(12*7)"})))
    assert wrong_tool.well_formed and not wrong_tool.right_tool and not wrong_tool.full_call
    missing = score_item(item(CONVERT), pred(("convert_units", {"value": 5, "from_unit": "km"})))
    assert (
        missing.right_tool
        and not missing.args_correct
        and "missing argument 'to_unit'" in missing.reasons[0]
    )
    extra = score_item(item(CALC), pred(("calculate", {"expression": "12 * 7", "precise": True})))
    assert extra.right_tool and not extra.full_call and "extra argument" in extra.reasons[0]


def test_schema_types_are_checked() -> None:
    # value as a string: matches nothing and fails the schema's "number" type
    score = score_item(
        item(CONVERT), pred(("convert_units", {"value": "5", "from_unit": "km", "to_unit": "mi"}))
    )
    assert not score.args_correct
    enum = ExpectedCall(
        "convert_units", {"value": [5], "from_unit": ["km"], "to_unit": ["miles", "mi"]}
    )
    bad_enum = score_item(
        item(enum), pred(("convert_units", {"value": 5, "from_unit": "km", "to_unit": "miles"}))
    )
    assert not bad_enum.args_correct and "schema" in bad_enum.reasons[0]


def test_defaults_may_be_omitted_or_given() -> None:
    listing = ExpectedCall.exact("list_dir", {"path": "."})
    assert score_item(item(listing), pred(("list_dir", {}))).full_call
    assert score_item(item(listing), pred(("list_dir", {"path": "."}))).full_call
    assert not score_item(item(listing), pred(("list_dir", {"path": "src"}))).full_call
    bare = ExpectedCall.exact("list_dir", {})
    assert score_item(item(bare), pred(("list_dir", {"path": "."}))).full_call  # default value
    assert not score_item(item(bare), pred(("list_dir", {"path": "docs"}))).full_call
    optional = ExpectedCall("calculate", {"expression": ["2+2"], "note": [MISSING_OK, "x"]})
    assert score_item(item(optional), pred(("calculate", {"expression": "2+2"}))).args_correct


def test_parallel_calls_match_in_any_order() -> None:
    both = item(CONVERT, CALC, category="parallel")
    right = {"value": 5, "from_unit": "km", "to_unit": "mi"}
    assert score_item(
        both, pred(("convert_units", right), ("calculate", {"expression": "12*7"}))
    ).full_call
    assert score_item(
        both, pred(("calculate", {"expression": "12*7"}), ("convert_units", right))
    ).full_call
    one_wrong = score_item(
        both, pred(("calculate", {"expression": "12*8"}), ("convert_units", right))
    )
    assert one_wrong.right_tool and not one_wrong.full_call
    only_one = score_item(both, pred(("calculate", {"expression": "12*7"})))
    assert not only_one.right_tool
    twice = item(
        CALC, ExpectedCall.exact("calculate", {"expression": "2 + 2"}), category="parallel"
    )
    swapped = pred(("calculate", {"expression": "2+2"}), ("calculate", {"expression": "12 * 7"}))
    assert score_item(twice, swapped).full_call


def test_malformed_arguments_are_not_well_formed() -> None:
    for raw in ('{"expression": "1+1"', '{"expression": NaN}', '{"a": 1, "a": 2}', "[1]"):
        score = score_item(item(CALC), pred(("calculate", raw)))
        assert not score.well_formed and not score.full_call
    nameless = score_item(item(CALC), pred(("", {"expression": "12 * 7"})))
    assert not nameless.well_formed
    silent = score_item(item(CALC), pred(text="84"))
    assert not silent.well_formed and silent.abstained and "no call" in silent.reasons


def test_abstention() -> None:
    none = item(category="no_tool")
    assert score_item(none, pred(text="Here is a haiku.")).correct
    called = score_item(none, pred(("calculate", {"expression": "1"})))
    assert not called.correct and not called.abstained and not called.expects_call
    broken = score_item(none, Prediction("", (PredictedCall("calculate", "{oops"),)))
    assert not broken.correct  # even a malformed call is not an abstention
    failed = score_item(none, Prediction("", (), error="connection: down"))
    assert not failed.correct


def test_answer_after_tool_result() -> None:
    answer = item(category="answer", check="answer")
    assert score_item(answer, pred(text="5 km is 3.1 mi.")).correct
    assert not score_item(answer, pred(text="<tool_response>{}</tool_response>")).correct
    assert not score_item(answer, pred(text="   ")).correct
    assert not score_item(
        answer, pred(("convert_units", {"value": 5, "from_unit": "km", "to_unit": "mi"}))
    ).correct


def test_summary_rates_use_the_items_each_metric_applies_to() -> None:
    scores = [
        score_item(item(CALC), pred(("calculate", {"expression": "12*7"}))),
        score_item(item(CALC), pred(("calculate", {"expression": "1"}))),
        score_item(item(category="no_tool"), pred(text="hi")),
        score_item(item(category="answer", check="answer"), pred(text="84")),
    ]
    summary = summarize(scores)
    assert summary["call_items"] == 2 and summary["full_call"] == 0.5
    assert summary["right_tool"] == 1.0 and summary["abstention"] == 1.0
    assert summary["answer_after_result"] == 1.0 and summary["overall"] == 0.75


def test_mcnemar_and_paired_comparison() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_exact(1, 9) == pytest.approx(2 * 11 / 1024)
    a = [score_item(item(CALC), pred(text="")) for _ in range(3)]
    b = [score_item(item(CALC), pred(("calculate", {"expression": "12*7"}))) for _ in range(3)]
    result = paired_comparison(a, b, metric="full_call")
    assert (result["a_only"], result["b_only"], result["a_rate"], result["b_rate"]) == (
        0,
        3,
        0.0,
        1.0,
    )
    assert result["p_value"] == pytest.approx(0.25)


def test_items_from_examples_cover_calls_abstention_and_answers() -> None:
    from runtime.finetune.builtin_phrasings import builtin_phrasebook
    from runtime.finetune.synth import synthesize

    examples = synthesize(
        ToolRegistry.from_module(tools), per_tool=4, seed=2, phrasebook=builtin_phrasebook()
    )
    items = items_from_examples(examples)
    categories = {i.category for i in items}
    assert {"single", "no_tool", "answer"} <= categories
    answer = next(i for i in items if i.category == "answer")
    assert answer.messages[-1]["role"] == "tool" and answer.expected == []
    # every synthesised example scores as correct against its own assistant turn
    for example, scored in zip(examples, [i for i in items if i.category != "answer"], strict=True):
        calls = [
            (c["function"]["name"], c["function"]["arguments"])
            for m in [next(m for m in example["messages"] if m["role"] == "assistant")]
            for c in m.get("tool_calls") or []
        ]
        assert score_item(scored, pred(*calls, text="ok")).correct, scored


def test_bfcl_files_load_as_items() -> None:
    pytest.importorskip("bfcl_eval")
    items = load_bfcl(["simple", "irrelevance"], limit=3)
    simple = [i for i in items if i.category == "bfcl_simple"]
    assert len(simple) == 3 and all(i.expected for i in simple)
    first = simple[0]
    params = first.tools[0]["function"]["parameters"]
    assert params["type"] == "object"
    assert "." not in first.expected[0].name
    assert all(not i.expected for i in items if i.category == "bfcl_irrelevance")
    # BFCL's own answer scores as correct: required values, optional ("") left out
    call = first.expected[0]
    args = {k: v[0] for k, v in call.arguments.items() if v[0] != MISSING_OK}
    assert score_item(first, pred((call.name, args))).full_call


def test_saved_items_round_trip(tmp_path: Path) -> None:
    original = item(CONVERT, CALC, category="parallel")
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps(original.to_dict()) + "\n")
    from runtime.finetune.eval_runner import read_items

    (loaded,) = read_items(path)
    assert loaded == original
