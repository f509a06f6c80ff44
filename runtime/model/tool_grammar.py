"""Constrained decoding for the embedded model: a GBNF grammar built from a request's `tools`.

A 135M-parameter model reads a person's sentence well enough to pick a tool and
copy the values, but on its own it also invents tool names, drops required
arguments and writes `{"value": 12, "from_unit": "km"}`. vLLM and llama.cpp
both offer grammar-constrained decoding; the embedded server uses it so every
call the model writes is well-formed by construction:

    root  ::= reply | calls            (tool_choice "auto")
    reply ::= [^<] ...                 a plain answer (it cannot start a call)
    calls ::= call ("\\n" call)*
    call  ::= "<tool_call>\\n{\\"name\\": \\"" (one of the tools' names and
              its arguments, by the tool's own JSON Schema) "}\\n</tool_call>"

So the name is always one of the offered tools, every required argument is
present, enums and types hold, and no unknown argument appears (JSON Schema's
`additionalProperties` absent counts as false here, as in llama.cpp), and
`pattern`s (dates, ids) are followed; string lengths and long repeats are left
to the gate. What the
grammar cannot do is choose: which tool, whether to call one at all, and which
values from the request — that is still the model's (and the fine-tuning's)
job, and the argument gate still validates every call (formats, ranges and
patterns the grammar does not express).

The text layout is exactly the one the chat template teaches
(`{"name": "...", "arguments": {...}}` inside `<tool_call>` tags), so a tuned
model is steered only where it would go wrong. A schema the converter cannot
express falls back to "any JSON object" for that tool's arguments.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from runtime.model.call_form import CallForm, every_key_schema

__all__ = ["ToolGrammarError", "next_argument_grammar", "tool_call_grammar"]

logger = logging.getLogger(__name__)

# The plain-answer branch: anything that does not begin a call. One character
# class then any characters; the model ends it with its end-of-turn token.
_REPLY_RULE = r"[^<\x00] [^\x00]*"


class ToolGrammarError(ValueError):
    """The request's tools cannot be turned into a grammar (no tools, bad names)."""


def _literal(text: str) -> str:
    """A GBNF string literal for `text`."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


def _function(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    inner = tool.get("function")
    return inner if isinstance(inner, Mapping) else tool


# What the grammar leaves to the argument gate: a `maxLength` of 500 would be
# 500 nested optional characters, a grammar that can take the server down.
_LEFT_TO_THE_GATE = ("minLength", "maxLength")
_ESCAPES = {"d": "0-9", "w": "A-Za-z0-9_", "s": " \\t"}
_LONG_REPEAT = re.compile(r"\{(\d+)(?:,(\d*))?\}")


def _pattern(pattern: str) -> str | None:
    """`pattern` in the form llama-cpp-python's converter reads correctly, or None.

    Its regex reader takes `\\d` for a literal (`^HTL-\\d{5}$` became the literal
    "HTL-\\dHTL-\\d..."), so `\\d`, `\\w` and `\\s` are spelled as classes; a
    pattern with a repeat over 16 is left to the gate.
    """
    if any(int(n or 0) > 16 for pair in _LONG_REPEAT.findall(pattern) for n in pair):
        return None
    out: list[str] = []
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            escaped = pattern[index + 1]
            if escaped in _ESCAPES:
                body = _ESCAPES[escaped]
                out.append(body if in_class else f"[{body}]")
            elif escaped.isupper() and escaped.lower() in _ESCAPES:
                return None  # \D, \W, \S: negated classes, left to the gate
            else:
                out.append(pattern[index : index + 2])
            index += 2
            continue
        if char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        out.append(char)
        index += 1
    return "".join(out)


_MAX_ITEMS_SPELLED_OUT = 8
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_MAX_GRAMMAR_CHARS = 200_000  # beyond this, serve unconstrained (the gate still checks)


def _loosened(schema: Any) -> Any:
    """`schema` without the constraints the grammar should not spell out."""
    if isinstance(schema, list):
        return [_loosened(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SCHEMA_MAPS and isinstance(value, Mapping):
            # names of properties, not keywords: a parameter may be called "pattern"
            out[key] = {name: _loosened(sub) for name, sub in value.items()}
            continue
        if key in _LEFT_TO_THE_GATE and not isinstance(value, Mapping):
            continue
        if key == "pattern" and isinstance(value, str):
            readable = _pattern(value)
            if readable is not None:
                out[key] = readable
            continue
        counts = (schema.get("minItems", 0), schema.get("maxItems", 0))
        long_count = any(isinstance(c, int) and c > _MAX_ITEMS_SPELLED_OUT for c in counts)
        if key in ("minItems", "maxItems") and long_count:
            continue
        out[key] = value if key in ("enum", "const", "examples", "default") else _loosened(value)
    return _with_described_shape(out)


def _with_described_shape(schema: dict[str, Any]) -> dict[str, Any]:
    """A plain string whose description fixes its shape ("Day, YYYY-MM-DD", "24-hour
    HH:MM") is decoded in that shape: the description is the tool's contract too."""
    if schema.get("type") != "string" or {"format", "pattern", "enum", "const"} & set(schema):
        return schema
    description = str(schema.get("description") or "")
    if "YYYY-MM-DD" in description and "HH" not in description:
        return {**schema, "format": "date"}
    if re.search(r"\bHH:MM\b", description) and "YYYY" not in description:
        return {**schema, "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}
    return schema


def _arguments_rule(
    converter: Any, schema: Any, rule_name: str, call_form: CallForm = "plain"
) -> str:
    """The converter's rule for one tool's parameters; any JSON object if it cannot say."""
    from llama_cpp.llama_grammar import PRIMITIVE_RULES

    if isinstance(schema, Mapping) and schema:
        try:
            loosened = _loosened(schema)
            if call_form == "every-key":
                loosened = every_key_schema(loosened)
            resolved = converter.resolve_refs(json.loads(json.dumps(loosened)), "tool")
            name: str = converter.visit(resolved, rule_name)
            return name
        except Exception as exc:
            logger.info("tool %s: arguments left unconstrained (%s)", rule_name, exc)
    return str(converter._add_primitive("object", PRIMITIVE_RULES["object"]))


def _converter() -> Any:
    """llama-cpp-python's JSON Schema to GBNF converter, as every grammar here uses it."""
    from llama_cpp.llama_grammar import SchemaConverter

    return SchemaConverter(  # type: ignore[no-untyped-call]
        prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False
    )


def tool_call_grammar(
    tools: Sequence[Mapping[str, Any]],
    *,
    tool_choice: str | Mapping[str, Any] | None = "auto",
    call_form: CallForm = "plain",
) -> str:
    """The GBNF grammar for a reply to a request offering `tools`.

    `tool_choice` "auto" (or None) allows a plain answer or one or more calls;
    "required" allows only calls; `{"type": "function", "function": {"name": N}}`
    allows exactly one call to N. `call_form` "every-key" writes every
    parameter, in the schema's order, an optional one possibly `null`
    (`runtime.model.call_form`). Raises `ToolGrammarError` for "none", no
    tools, or a named tool that is not offered.
    """
    if tool_choice == "none":
        raise ToolGrammarError("tool_choice 'none' needs no tool grammar")
    functions = [_function(tool) for tool in tools]
    named: str | None = None
    if isinstance(tool_choice, Mapping):
        inner = tool_choice.get("function")
        named = inner.get("name") if isinstance(inner, Mapping) else None
        if not isinstance(named, str):
            raise ToolGrammarError("a named tool_choice needs function.name")
        functions = [f for f in functions if f.get("name") == named]
        if not functions:
            raise ToolGrammarError(f"tool_choice names {named!r}, which is not among the tools")
    if not functions:
        raise ToolGrammarError("no tools to build a grammar for")

    converter = _converter()
    alternatives = []
    for index, function in enumerate(functions):
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise ToolGrammarError(f"tool #{index} has no name")
        arguments = _arguments_rule(
            converter, function.get("parameters"), f"tool{index}-args", call_form
        )
        head = _literal(json.dumps(name, ensure_ascii=False)[1:] + ', "arguments": ')
        alternatives.append(f"{head} {arguments}")

    rules = [
        'call ::= "<tool_call>\\n{\\"name\\": \\"" ( '
        + " | ".join(alternatives)
        + ' ) "}\\n</tool_call>"',
    ]
    if named is not None:
        rules.append("root ::= call")
    else:
        rules.append('calls ::= call ( "\\n" call )*')
        rules.append(
            "root ::= calls" if tool_choice == "required" else f"root ::= calls | {_REPLY_RULE}"
        )
    grammar: str = converter.format_grammar()
    text = "\n".join([*reversed(rules), grammar]) + "\n"
    if len(text) > _MAX_GRAMMAR_CHARS:
        raise ToolGrammarError(f"the tools' grammar is too large ({len(text)} characters)")
    return text


def next_argument_grammar(parameters: Mapping[str, Any]) -> str:
    """The GBNF grammar for one more `"name": value` of an arguments object, where
    `parameters` maps the names still open to their schemas (loosened as a
    call's arguments are), and the `,` or `}` after it. The model picks the name
    it ranks first and then its value; without a way to end the value, a model
    that would close the object keeps writing digits ("30" became
    3000000000000000). Raises `ToolGrammarError` when no parameter is given or
    the converter cannot express a schema."""
    if not parameters:
        raise ToolGrammarError("no parameter to ask for")
    converter = _converter()
    alternatives = []
    for index, (name, schema) in enumerate(parameters.items()):
        try:
            loosened = json.loads(json.dumps(_loosened(schema)))
            resolved = converter.resolve_refs(loosened, f"param{index}")
            rule: str = converter.visit(resolved, f"param{index}")
        except Exception as exc:
            raise ToolGrammarError(f"no grammar for parameter {name!r}: {exc}") from exc
        alternatives.append(f"{_literal(json.dumps(name, ensure_ascii=False) + ': ')} {rule}")
    grammar: str = converter.format_grammar()
    return f'root ::= ( {" | ".join(alternatives)} ) ( "," | "}}" )\n{grammar}'
