"""How a model writes a call's arguments: as given (`plain`) or with every key (`every-key`).

A small model decides to leave out an optional argument at one token: after
`{"room": "kitchen"` it writes `}` instead of `, "on"`, before it has seen the
name of the argument it is dropping. "kitchen lights off" became
`{"room": "kitchen"}` far more often than the request's words would suggest.

In the `every-key` form every top-level parameter of the tool is written, in
the schema's order, and an optional one the request does not state is `null`:

    {"room": "kitchen", "on": false, "brightness": null, "color": null}

so the choice is made once per parameter, right after its name. Training
renders calls this way (`spell_out_example`), the embedded server decodes
under a grammar that writes every key (`runtime/model/tool_grammar.py`), and
`drop_unstated` turns the reply back into the ordinary call before anything
else sees it: the runtime, the gate and the audit log only ever see
`{"room": "kitchen", "on": false}`.

So in this form `null` means "not stated": an optional parameter whose schema
also accepts `null` cannot be set to `null` explicitly; it gets its default.
An adapter's manifest records the form it was trained in (`call_form`), and
everything that serves it (`serve-model`, `run`, `demo`, `eval`) follows it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

__all__ = [
    "CALL_FORMS",
    "CallForm",
    "drop_unstated",
    "drop_unstated_in_text",
    "every_key_schema",
    "parameters_by_name",
    "spell_out",
    "spell_out_example",
    "spell_out_messages",
]

CallForm = Literal["plain", "every-key"]
CALL_FORMS: tuple[str, ...] = get_args(CallForm)


def _properties(parameters: Any) -> tuple[Mapping[str, Any], set[str]] | None:
    if not isinstance(parameters, Mapping):
        return None
    properties = parameters.get("properties")
    if not isinstance(properties, Mapping):
        return None
    required = parameters.get("required")
    names = {r for r in required if isinstance(r, str)} if isinstance(required, list) else set()
    return properties, names


def spell_out(arguments: Mapping[str, Any], parameters: Any) -> dict[str, Any]:
    """`arguments` with every parameter of the schema, in its order; an optional
    one not given is `None`. Arguments the schema does not name keep their place
    after those (the gate will reject them; the model never learns to drop them)."""
    shape = _properties(parameters)
    if shape is None:
        return dict(arguments)
    properties, required = shape
    out: dict[str, Any] = {}
    for name in properties:
        if name in arguments:
            out[name] = arguments[name]
        elif name not in required:
            out[name] = None
    for name, value in arguments.items():
        out.setdefault(name, value)
    return out


def drop_unstated(arguments: Mapping[str, Any], parameters: Any) -> dict[str, Any]:
    """The inverse of `spell_out`: optional parameters whose value is `null` are
    left out. Required ones and names the schema does not know are kept as they
    are, so the gate still sees (and rejects) a `null` where a value is needed."""
    shape = _properties(parameters)
    if shape is None:
        return dict(arguments)
    properties, required = shape
    return {
        name: value
        for name, value in arguments.items()
        if not (value is None and name in properties and name not in required)
    }


def every_key_schema(parameters: Any) -> Any:
    """The parameters' schema as the `every-key` grammar decodes it: every
    property required, an optional one also allowed to be `null`."""
    shape = _properties(parameters)
    if shape is None:
        return parameters
    properties, required = shape
    spelled = {
        name: schema if name in required else {"anyOf": [schema, {"type": "null"}]}
        for name, schema in properties.items()
    }
    return {**parameters, "properties": spelled, "required": list(spelled)}


def parameters_by_name(tools: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Each offered tool's `parameters` schema, by the tool's name."""
    out: dict[str, Any] = {}
    for tool in tools:
        function = tool.get("function") if isinstance(tool.get("function"), Mapping) else tool
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            out[function["name"]] = function.get("parameters")
    return out


def _spelled_call(call: Mapping[str, Any], parameters: Mapping[str, Any]) -> Mapping[str, Any]:
    function = call.get("function")
    if not isinstance(function, Mapping) or function.get("name") not in parameters:
        return call
    raw = function.get("arguments", {})
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return call  # malformed on purpose (a repair example): leave it as written
    if not isinstance(arguments, Mapping):
        return call
    spelled = spell_out(arguments, parameters[function["name"]])
    text: Any = json.dumps(spelled, ensure_ascii=False) if isinstance(raw, str) else spelled
    return {**call, "function": {**function, "arguments": text}}


def spell_out_messages(
    messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """`messages` with every assistant call's arguments spelled out for `tools`."""
    parameters = parameters_by_name(tools)
    out: list[Mapping[str, Any]] = []
    for message in messages:
        calls = message.get("tool_calls") if message.get("role") == "assistant" else None
        if calls:
            message = {**message, "tool_calls": [_spelled_call(c, parameters) for c in calls]}
        out.append(message)
    return out


def spell_out_example(example: Mapping[str, Any]) -> dict[str, Any]:
    """A training example (`messages` + `tools`) in the `every-key` form."""
    tools = example.get("tools") or []
    return {**example, "messages": spell_out_messages(example.get("messages") or [], tools)}


_BLOCK = re.compile(r"<tool_call>\n(.*?)\n</tool_call>", re.DOTALL)


def drop_unstated_in_text(text: str, tools: Sequence[Mapping[str, Any]]) -> str:
    """A reply's `<tool_call>` blocks with `drop_unstated` applied to each call,
    written back exactly as the chat template writes a call. A block that is
    not a well-formed call of an offered tool is left as it is, for the
    runtime's parser and gate to report."""
    if "<tool_call>" not in text:
        return text
    parameters = parameters_by_name(tools)

    def rewrite(match: re.Match[str]) -> str:
        try:
            call = json.loads(match.group(1))
        except ValueError:
            return match.group(0)
        if not isinstance(call, dict) or call.get("name") not in parameters:
            return match.group(0)
        arguments = call.get("arguments")
        if not isinstance(arguments, Mapping):
            return match.group(0)
        call["arguments"] = drop_unstated(arguments, parameters[call["name"]])
        return "<tool_call>\n" + json.dumps(call, ensure_ascii=False) + "\n</tool_call>"

    return _BLOCK.sub(rewrite, text)
