"""The grammar the embedded server decodes tool calls under (runtime/model/tool_grammar.py).

Structure is checked here; that llama.cpp accepts the grammar and that a real
model decoding under it writes only valid calls is checked in
tests/integration/test_tool_grammar_model.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime.model.tool_grammar import ToolGrammarError, tool_call_grammar

# The grammar is built with llama-cpp-python's schema converter: these tests go
# wherever the embedded model goes (AGENTRT_NO_MODEL=1 deselects them).
pytestmark = [pytest.mark.model]


def _parse(grammar: str) -> Any:
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_string(grammar, verbose=False)


def _tool(name: str, parameters: dict[str, object]) -> dict[str, object]:
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


WEATHER = _tool(
    "get_weather",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city"],
    },
)
PING = _tool("ping", {"type": "object", "properties": {}})


def _rules(grammar: str) -> dict[str, str]:
    return dict(line.split(" ::= ", 1) for line in grammar.splitlines() if line)


def test_auto_allows_a_plain_answer_or_calls_to_the_offered_tools_only() -> None:
    rules = _rules(tool_call_grammar([WEATHER, PING]))
    assert rules["root"].startswith("calls | [^<")
    assert rules["calls"] == 'call ( "\\n" call )*'
    call = rules["call"]
    assert call.startswith('"<tool_call>\\n{\\"name\\": \\""')
    assert '"get_weather\\", \\"arguments\\": " tool0-args' in call
    assert '"ping\\", \\"arguments\\": " tool1-args' in call
    assert call.endswith('"}\\n</tool_call>"')
    # The required argument comes unconditionally, the optional one may follow,
    # and the enum admits its two values only.
    assert rules["tool0-args"].startswith('"{" space tool0-args-city-kv (')
    assert rules["tool0-args-unit"] == '"\\"celsius\\"" | "\\"fahrenheit\\""'


def test_required_and_named_choices_leave_no_plain_answer() -> None:
    assert _rules(tool_call_grammar([WEATHER], tool_choice="required"))["root"] == "calls"
    named = _rules(
        tool_call_grammar(
            [WEATHER, PING], tool_choice={"type": "function", "function": {"name": "ping"}}
        )
    )
    assert named["root"] == "call"
    assert "get_weather" not in named["call"]


@pytest.mark.parametrize(
    "tools",
    [
        [WEATHER, PING],
        # Nested arrays, oneOf and a 500-value enum stay expressible.
        [
            _tool(
                "plot",
                {
                    "type": "object",
                    "properties": {
                        "points": {
                            "type": "array",
                            "items": {"type": "array", "items": {"type": "number"}},
                        }
                    },
                    "required": ["points"],
                },
            )
        ],
        [
            _tool(
                "pick",
                {
                    "type": "object",
                    "properties": {
                        "v": {"oneOf": [{"type": "integer"}, {"type": "string", "format": "date"}]}
                    },
                    "required": ["v"],
                },
            )
        ],
        [
            _tool(
                "sku",
                {
                    "type": "object",
                    "properties": {"code": {"enum": [f"SKU-{i:03d}" for i in range(500)]}},
                    "required": ["code"],
                },
            )
        ],
        # A name with a quote and a schema that is not an object schema at all.
        [
            _tool(
                'say"hi',
                {
                    "type": "object",
                    "properties": {"t": {"type": "string", "pattern": "^[A-Z]{2}\\d{3}$"}},
                },
            ),
            _tool("odd", {"not": {}}),
        ],
    ],
    ids=["plain", "nested-arrays", "oneOf", "enum-500", "odd-names-and-schemas"],
)
def test_llama_cpp_parses_the_grammar(tools: list[dict[str, object]]) -> None:
    _parse(tool_call_grammar(tools))
    _parse(tool_call_grammar(tools, call_form="every-key"))


def test_the_every_key_form_writes_every_parameter_in_order_optional_ones_maybe_null() -> None:
    rules = _rules(tool_call_grammar([WEATHER, PING], call_form="every-key"))
    # no optional group: the unit key always follows the city, and may be null
    assert rules["tool0-args"] == (
        '"{" space tool0-args-city-kv "," space tool0-args-unit-kv "}" space'
    )
    assert rules["tool0-args-unit"] == "tool0-args-unit-0 | null"
    assert "celsius" in rules["tool0-args-unit-0"] and "null" not in rules["tool0-args-unit-0"]
    assert "null" not in rules["tool0-args-city-kv"]
    plain = _rules(tool_call_grammar([WEATHER]))
    assert plain["tool0-args"] != rules["tool0-args"]


def test_the_embedded_server_follows_the_adapters_call_form(tmp_path: Path) -> None:
    from runtime.model.local_server import LocalModelServer

    adapter = tmp_path / "adapter.gguf"
    adapter.write_bytes(b"")
    assert "--call_form" not in LocalModelServer(adapter=adapter).command()
    (tmp_path / "agentrt_adapter.json").write_text(json.dumps({"call_form": "every-key"}))
    assert LocalModelServer(adapter=adapter).command()[-2:] == ["--call_form", "every-key"]
    forced = LocalModelServer(adapter=adapter, call_form="plain").command()
    assert "--call_form" not in forced


def test_refuses_what_it_cannot_constrain() -> None:
    with pytest.raises(ToolGrammarError, match="no tools"):
        tool_call_grammar([])
    with pytest.raises(ToolGrammarError, match="'none'"):
        tool_call_grammar([WEATHER], tool_choice="none")
    with pytest.raises(ToolGrammarError, match="not among the tools"):
        tool_call_grammar([WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}})
    with pytest.raises(ToolGrammarError, match="has no name"):
        tool_call_grammar([_tool("", {"type": "object"})])


def test_the_embedded_server_decodes_under_the_grammar_unless_told_not_to() -> None:
    import argparse

    from runtime.cli.embedded_model import add_embedded_model_options, embedded_server
    from runtime.model.local_server import LocalModelServer

    parser = argparse.ArgumentParser()
    add_embedded_model_options(parser)
    default = embedded_server(parser.parse_args(["--base"]))
    free = embedded_server(parser.parse_args(["--base", "--no-tool-grammar"]))
    assert "--tool_grammar" not in default.command()
    assert free.command()[-2:] == ["--tool_grammar", "off"]
    assert "--tool_grammar" not in LocalModelServer(tool_grammar=True).command()


def test_patterns_are_followed_and_lengths_and_long_counts_left_to_the_gate() -> None:
    # llama-cpp-python's converter reads `\d` as a literal (`^HTL-\d{5}$` became
    # "HTL-\dHTL-\d..."), and spells maxLength 500 as 500 nested optional
    # characters (a server-killing grammar).
    tools = [
        _tool(
            "book",
            {
                "type": "object",
                "properties": {
                    "hotel_id": {"type": "string", "pattern": "^HTL-\\d{5}$"},
                    "day": {"type": "string", "pattern": "^\\d{4}-\\d{2}-\\d{2}$"},
                    "code": {"type": "string", "pattern": "^\\D{1,40}$"},
                    "notes": {"anyOf": [{"type": "string", "maxLength": 500}, {"type": "null"}]},
                    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 50},
                    "pair": {
                        "type": "array",
                        "items": {"type": "integer"},
                        "minItems": 2,
                        "maxItems": 2,
                    },
                },
                "required": ["hotel_id"],
            },
        )
    ]
    grammar = tool_call_grammar(tools)
    assert "\\d" not in grammar and len(grammar) < 4000, len(grammar)
    rules = _rules(grammar)
    assert rules["tool0-args-hotel-id"].startswith('"\\"" "HTL" "-" ')
    assert rules["tool0-args-hotel-id"].count("tool0-args-hotel-id-1") == 5
    assert rules["tool0-args-hotel-id-1"] == "[0-9]"
    assert rules["tool0-args-day-kv"].endswith(" tool0-args-day")
    assert rules["tool0-args-code-kv"].endswith(" string")  # a negated class: the gate checks it
    # a short, fixed item count is still spelled out
    assert rules["tool0-args-pair"].count("integer") >= 2
    _parse(grammar)


def test_parameter_names_are_not_keywords_and_described_shapes_are_decoded() -> None:
    tools = [
        _tool(
            "grep",
            {
                "type": "object",
                "properties": {
                    "pattern": {"type": "string", "description": "What to look for."},
                    "maxLength": {"type": "integer"},
                    "day": {"type": "string", "description": "Day of the reminder, YYYY-MM-DD."},
                    "at": {"type": "string", "description": "Time of day, 24-hour HH:MM."},
                },
                "required": ["pattern", "maxLength", "day", "at"],
            },
        )
    ]
    rules = _rules(tool_call_grammar(tools))
    assert rules["tool0-args-pattern-kv"].endswith(" string")
    assert rules["tool0-args-maxLength-kv"].endswith(" integer")
    assert rules["tool0-args-day"] == "date-string"
    assert "[0-5]" in rules["tool0-args-at"]
