"""Prompt composition: rendering snapshots, few-shot validation, think-first splitting."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from runtime import tool
from runtime.model.client import ModelTurn, Usage
from runtime.prompting import (
    FewShotExamples,
    Prompt,
    PromptError,
    PromptTemplate,
    ThinkFirst,
    load_examples,
    split_reasoning,
    to_text_protocol,
)
from runtime.tools import ToolRegistry

SNAPSHOTS = Path(__file__).parents[1] / "fixtures" / "prompt_snapshots"


@tool
def convert_units(value: float, from_unit: str, to_unit: str) -> float:
    """Convert a quantity between units.

    Args:
        value: The quantity.
        from_unit: Unit of the value, e.g. km.
        to_unit: Unit wanted, e.g. mi.
    """
    return value


@tool
def calculate(expression: str) -> float:
    """Evaluate an arithmetic expression.

    Args:
        expression: e.g. 2 * (3 + 4).
    """
    return 0.0


TOOLS = ToolRegistry([convert_units, calculate]).openai_schemas()

EXAMPLE = [
    {"role": "user", "content": "How many miles is 5 km?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "function": {
                    "name": "convert_units",
                    "arguments": {"value": 5, "from_unit": "km", "to_unit": "mi"},
                }
            }
        ],
    },
    {"role": "tool", "content": "3.107"},
    {"role": "assistant", "content": "5 km is about 3.11 miles."},
]

TEMPLATE = PromptTemplate(
    role="You are the operations assistant for $team.",
    rules=("Answer in English.", "Never guess a value a tool can compute."),
    sections=(("Tone", "Short sentences; costs in $$."),),
    variables={"team": "the platform team"},
)


def check_snapshot(name: str, text: str) -> None:
    """Compare with the stored snapshot; AGENTRT_UPDATE_SNAPSHOTS=1 rewrites it."""
    path = SNAPSHOTS / name
    if os.environ.get("AGENTRT_UPDATE_SNAPSHOTS") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing snapshot {path}; run with AGENTRT_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(encoding="utf-8")


def test_template_renders_parts_in_order() -> None:
    text = TEMPLATE.render(tool_names=["convert_units", "calculate"])
    check_snapshot("template.txt", text)
    assert text.index("operations assistant") < text.index("# Rules") < text.index("# Using tools")
    assert "costs in $." in text and "$tools" not in text
    assert "(convert_units, calculate)" in text


def test_rendering_is_deterministic_and_variables_override() -> None:
    first = TEMPLATE.render({"team": "billing"}, tool_names=["calculate"])
    assert first == TEMPLATE.render({"team": "billing"}, tool_names=["calculate"])
    assert "for billing." in first


def test_tool_use_part_only_with_tools() -> None:
    assert "# Using tools" not in TEMPLATE.render(tool_names=[])


def test_missing_variable_is_an_error() -> None:
    template = PromptTemplate(role="Hello $customer")
    with pytest.raises(PromptError, match=r"\$customer"):
        template.render()


def test_lone_dollar_is_an_error() -> None:
    with pytest.raises(PromptError, match=r"\$\$"):
        PromptTemplate(role="costs $5 ${").render()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rol": "x"}, "unknown key 'rol'"),
        ({"rules": "be nice"}, "rules must be a list"),
        ({"sections": {"Rules": "x"}}, "reserved"),
        ({"role": "  "}, "role is empty"),
        ({"variables": {"a b": "x"}}, "not an identifier"),
    ],
)
def test_template_mapping_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(PromptError, match=message):
        PromptTemplate.from_mapping(data)


def test_template_from_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "prompt.yaml"
    path.write_text(
        "role: You are the operations assistant for $team.\n"
        "rules:\n  - Answer in English.\n  - Never guess a value a tool can compute.\n"
        "sections:\n  Tone: Short sentences; costs in $$.\n"
        "variables:\n  team: the platform team\n"
    )
    loaded = PromptTemplate.from_file(path)
    assert loaded.render(tool_names=["calculate"]) == TEMPLATE.render(tool_names=["calculate"])
    path.write_text("role: x\nrole: y\n")
    with pytest.raises(PromptError, match="duplicate key"):
        PromptTemplate.from_file(path)


def test_full_prompt_snapshot_with_examples_think_and_text_tools() -> None:
    bound = Prompt(
        system=TEMPLATE, examples=[EXAMPLE], think_first=True, tools_in_prompt=True
    ).bind(TOOLS)
    messages = bound.opening("Convert 10 kg to lb.")
    wire, tools = bound.request(messages, TOOLS)
    assert tools == []
    check_snapshot("full_prompt.json", json.dumps(wire, indent=2, ensure_ascii=False) + "\n")


def test_examples_get_ids_and_canonical_arguments() -> None:
    examples = load_examples([EXAMPLE])
    messages = examples.messages()
    call = messages[1]["tool_calls"][0]
    assert call["id"] == "example-1-call-1"
    assert json.loads(call["function"]["arguments"]) == {
        "value": 5,
        "from_unit": "km",
        "to_unit": "mi",
    }
    assert messages[2] == {"role": "tool", "tool_call_id": "example-1-call-1", "content": "3.107"}


def _with_call(name: str, arguments: Any) -> list[dict[str, Any]]:
    example = json.loads(json.dumps(EXAMPLE))
    example[1]["tool_calls"][0]["function"] = {"name": name, "arguments": arguments}
    return example


@pytest.mark.parametrize(
    ("conversation", "message"),
    [
        (_with_call("convert_unit", {"value": 1}), "unknown tool 'convert_unit'"),
        (
            _with_call("convert_units", {"value": "5", "from_unit": "km", "to_unit": "mi"}),
            "invalid arguments at value",
        ),
        (_with_call("convert_units", {"value": 5, "from_unit": "km"}), "'to_unit' is a required"),
        (_with_call("convert_units", '{"value": 5, "value": 6}'), "duplicate key"),
        (
            _with_call("convert_units", {"value": 5, "from_unit": "km", "to_unit": "mi", "x": 1}),
            "Additional properties",
        ),
        (EXAMPLE[:2], "has no tool message"),
        (EXAMPLE[1:], "starts with the user"),
        ([{"role": "system", "content": "x"}], "not allowed"),
        ([EXAMPLE[0], {"role": "tool", "content": "x"}], "must answer an assistant tool call"),
    ],
)
def test_invalid_examples_are_errors(conversation: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(PromptError, match=message):
        Prompt(examples=[conversation]).bind(TOOLS)


def test_examples_from_training_format_file(tmp_path: Path) -> None:
    path = tmp_path / "examples.jsonl"
    rows = [{"messages": [{"role": "system", "content": "dropped"}, *EXAMPLE]}] * 2
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    examples = load_examples(path)
    assert isinstance(examples, FewShotExamples) and len(examples) == 2
    assert all(m["role"] != "system" for m in examples.messages())
    assert examples.messages()[5]["tool_calls"][0]["id"] == "example-2-call-1"


@pytest.mark.parametrize(
    ("text", "visible", "reasoning"),
    [
        ("<think>need km→mi</think>About 3.1 miles.", "About 3.1 miles.", "need km→mi"),
        ("A <think>x</think>B<think>y</think> C", "A B C", "x\n\ny"),
        ("<think>ran out of tok", "", "ran out of tok"),
        ("pre-opened reasoning</think>The answer.", "The answer.", "pre-opened reasoning"),
        ("no reasoning at all", "no reasoning at all", ""),
    ],
)
def test_split_reasoning(text: str, visible: str, reasoning: str) -> None:
    assert split_reasoning(text) == (visible, reasoning)


def _turn(content: str) -> ModelTurn:
    """The turn the client makes of a reply with this text (no native calls)."""
    return ModelTurn.from_reply(content, (), "stop", usage=Usage(), model="m")


def test_call_drafted_inside_reasoning_is_not_a_call() -> None:
    bound = Prompt(think_first=True).bind(TOOLS)
    draft = '<tool_call>{"name": "calculate", "arguments": {"expression": "1/0"}}</tool_call>'
    read = bound.read(_turn(f"<think>maybe {draft}? no.</think>It is 4."))
    assert read.turn.tool_calls == ()
    assert read.turn.text == "It is 4." and read.turn.finish_reason == "stop"
    assert "1/0" in read.reasoning and "1/0" not in read.turn.text


def test_call_after_reasoning_is_kept() -> None:
    bound = Prompt(think_first=True).bind(TOOLS)
    call = '<tool_call>{"name": "calculate", "arguments": {"expression": "2+2"}}</tool_call>'
    read = bound.read(_turn(f"<think>use calculate</think>{call}"))
    assert [c.name for c in read.turn.tool_calls] == ["calculate"]
    assert read.turn.text == "" and read.reasoning == "use calculate"


def test_think_first_needs_its_tag_in_the_instruction() -> None:
    with pytest.raises(ValueError, match="<reason>"):
        ThinkFirst(instruction="think first", tag="reason")


def test_text_protocol_turns_calls_and_results_into_text() -> None:
    history = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "1", "function": {"name": "a", "arguments": '{"x": 1}'}},
                {"id": "2", "function": {"name": "b", "arguments": "{broken"}},
            ],
        },
        {"role": "tool", "tool_call_id": "1", "content": "r1"},
        {"role": "tool", "tool_call_id": "2", "content": "r2"},
    ]
    out = to_text_protocol(history)
    assert [m["role"] for m in out] == ["user", "assistant", "user"]
    assert '{"name": "a", "arguments": {"x": 1}}' in out[1]["content"]
    assert '"arguments": "{broken"' in out[1]["content"]
    assert (
        out[2]["content"]
        == "<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n</tool_response>"
    )
    assert all("tool_calls" not in m for m in out)
