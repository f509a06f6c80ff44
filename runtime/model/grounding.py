"""Calls grounded in the conversation: optional values a small model leaves out or
makes up, and calls on required values nobody gave.

The embedded 135M model reads which tool a request needs and copies its
required values well enough, but it decides to stop a call's arguments at one
token: after `{"room": "living_room"` it writes `}` rather than `, "brightness"`,
so "dim the living room lights to 30%" loses its 30. It also adds optional
settings nobody asked for (`"mode": "heat"` for "set the thermostat to 18.5").
That a required argument is there is the grammar's business; these two faults
are about optional ones, and the conversation itself says which are right. And
where a request leaves a required value out, the model writes one anyway.

`ground_reply` rewrites each `<tool_call>` block of a reply, for the optional
top-level parameters of the called tool:

- **fill**: the model is asked to go on writing the arguments after `, ` — one
  short decode under a grammar that allows only the optional parameters the
  call leaves out, each with its own value schema — so it names the one it
  ranks first and its value; the value is kept when the conversation states it
  (`stated`, strict), is not the default, and no other argument of the call
  already took it; then the next, until each has been offered once;
- **drop**: an optional argument whose value the conversation does not state
  (`stated`, lenient) is removed, so the tool's default applies;
- **switches**: an optional boolean the call leaves out is set when the
  request, asked for that parameter's value, moves the model toward the value
  that is not the default: its odds of `true` after the request against its odds
  with the request emptied (the model leans one way whatever is asked), as a
  probability of at least `SWITCH_CONFIDENCE`, and the model, asked, picks that
  value too ("kitchen lights off" -> `on: false`, "don't email the traveller"
  -> `notify_traveller: false`): a
  switch is stated by meaning ("off", "unlock", "skip"), never by its value's
  word, so only the model can read it.

`withdraw_invented_calls` runs first: a call whose *required* argument is an
identifier (letters and digits, or an email address: `K7Q2ZP`, `SO-104233`,
`dana@example.com`) that nobody in the conversation wrote is withdrawn, and a
reply left without calls asks for the value instead ("please cancel my
booking" has no booking reference to cancel). A small model copies such values
from the worked requests or makes them up, and a call on an invented order or
booking is the one that does harm. With the model at hand (a `ValueProbe`),
any other required value the conversation does not spell out is put to it: the
value's log-probability after the request, against that with the request
emptied (among the values an enum lists), must rise by `GIVEN_MARGIN` or the
call is withdrawn too ("set the fan to speed 2" -> `room: "attic"`, which the
request does nothing to make likelier: which room?).

What the conversation states is judged in `runtime.model.stated`, by its text;
the gate still validates every call that comes out.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runtime.model.call_form import parameters_by_name
from runtime.model.stated import Conversation, is_identifier, normal_words, stated, value_kind

__all__ = [
    "GIVEN_MARGIN",
    "MAX_CHOICES",
    "MAX_OFFERS",
    "SWITCH_CONFIDENCE",
    "Probe",
    "SwitchProbe",
    "ValueProbe",
    "Withdrawn",
    "ground_arguments",
    "ground_reply",
    "withdraw_invented_calls",
]

logger = logging.getLogger(__name__)

#: At most this many optional parameters are offered to the model per call: a
#: tool with dozens of settings costs a few decodes, not dozens.
MAX_OFFERS = 6

_BLOCK = re.compile(r"<tool_call>\n(.*?)\n</tool_call>", re.DOTALL)


def _taken(value: Any, arguments: Mapping[str, Any], tool_name: str = "") -> bool:
    """Whether another argument of the call already holds `value`, or a text value
    only restates the tool's name or holds another argument's value ("good until
    2027-01-15" next to `expires_on: "2027-01-15"`)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return any(
            isinstance(other, (int, float)) and not isinstance(other, bool) and other == value
            for other in arguments.values()
        )
    phrase = f" {normal_words(str(value))} "
    if not phrase.strip() or phrase == f" {normal_words(tool_name)} ":
        return True
    for other in arguments.values():
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            other = str(other)
        if not isinstance(other, str) or not normal_words(other):
            continue
        held = f" {normal_words(other)} "
        if phrase in held or held in phrase:
            return True
    return False


# Asks the model for one more argument after the call's arguments so far, among
# the open parameters (name -> schema): returns the (name, value) it writes, or
# None when it gave nothing usable.
Probe = Callable[[Mapping[str, Any], Mapping[str, Any]], "tuple[str, Any] | None"]

# Asks the model for the value of one boolean parameter after the call's arguments
# so far: returns how strongly the request moves it to `true` rather than `false`,
# as a probability (0.5: not at all, or not as far as the model picking that
# value), or None.
SwitchProbe = Callable[[Mapping[str, Any], str], "float | None"]

#: An optional boolean the call leaves out is set to the value that is not its
#: default when the model gives that value at least this probability (calibrated
#: on bench/calibration: see its README).
SWITCH_CONFIDENCE = 0.8


def _is_switch(schema: Any) -> bool:
    """A boolean parameter (or a boolean that may be null)."""
    if not isinstance(schema, Mapping):
        return False
    kind = schema.get("type")
    if kind == "boolean" or (isinstance(kind, list) and set(kind) - {"null"} == {"boolean"}):
        return True
    options = [o for k in ("anyOf", "oneOf") for o in schema.get(k) or []]
    real = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
    return len(real) == 1 and _is_switch(real[0])


def _optional_parameters(parameters: Any) -> dict[str, Any]:
    if not isinstance(parameters, Mapping) or not isinstance(parameters.get("properties"), Mapping):
        return {}
    required = parameters.get("required")
    required_names = set(required) if isinstance(required, list) else set()
    return {n: s for n, s in parameters["properties"].items() if n not in required_names}


def ground_arguments(
    arguments: Mapping[str, Any],
    parameters: Any,
    conversation: Conversation,
    probe: Probe | None = None,
    tool_name: str = "",
    switch_probe: SwitchProbe | None = None,
) -> dict[str, Any]:
    """`arguments` with unstated optional values dropped and, with a `probe`, the
    optional values the conversation states filled in: the model names the
    parameter it would write next among those still open, and its value is kept
    when stated; then the next, until each has been offered once (at most
    `MAX_OFFERS`). With a `switch_probe`, each optional boolean left out is set
    when the model is sure enough it is not the default (`SWITCH_CONFIDENCE`)."""
    optional = _optional_parameters(parameters)
    out: dict[str, Any] = {}
    for name, value in arguments.items():
        if name in optional and stated(value, optional[name], conversation, strict=False) is False:
            logger.info("grounding: dropped %s=%s (not stated)", name, json.dumps(value))
            continue
        out[name] = value
    if probe is not None:
        _fill(out, optional, conversation, probe, tool_name)
    if switch_probe is not None:
        _set_switches(out, optional, switch_probe, tool_name)
    return out


def _fill(
    out: dict[str, Any],
    optional: Mapping[str, Any],
    conversation: Conversation,
    probe: Probe,
    tool_name: str,
) -> None:
    open_ = {n: sch for n, sch in optional.items() if n not in out and value_kind(sch) is not None}
    for _ in range(MAX_OFFERS):
        if not open_:
            break
        offered = probe(out, open_)
        if offered is None or offered[0] not in open_:
            break
        name, value = offered
        schema = open_.pop(name)
        if value is None or value == schema.get("default") or _taken(value, out, tool_name):
            logger.debug("grounding: %s=%s not filled (default or taken)", name, json.dumps(value))
        elif stated(value, schema, conversation, strict=True):
            logger.info("grounding: filled %s=%s", name, json.dumps(value))
            out[name] = value
        else:
            logger.debug("grounding: %s=%s not filled (not stated)", name, json.dumps(value))


def _set_switches(
    arguments: dict[str, Any], optional: Mapping[str, Any], switch_probe: SwitchProbe, tool: str
) -> None:
    switches = [n for n, sch in optional.items() if n not in arguments and _is_switch(sch)]
    for name in switches[:MAX_OFFERS]:
        p_true = switch_probe(arguments, name)
        if p_true is None:
            continue
        value = p_true >= 0.5
        confidence = max(p_true, 1.0 - p_true)
        default = optional[name].get("default") if isinstance(optional[name], Mapping) else None
        if value != default and confidence >= SWITCH_CONFIDENCE:
            logger.info(
                "grounding: %s: set %s=%s (p=%.2f)", tool, name, json.dumps(value), confidence
            )
            arguments[name] = value
        else:
            logger.debug("grounding: %s: %s left out (p(true)=%.2f)", tool, name, p_true)


def _call_head(name: str) -> str:
    """A call block up to its arguments, as the chat template writes it."""
    return "<tool_call>\n" + json.dumps({"name": name}, ensure_ascii=False)[:-1] + ', "arguments": '


def ground_reply(
    text: str,
    tools: Sequence[Mapping[str, Any]],
    messages: Sequence[Mapping[str, Any]],
    probe_for: Callable[[str], Probe] | None = None,
    switch_probe_for: Callable[[str], SwitchProbe] | None = None,
) -> str:
    """`text` with each well-formed `<tool_call>` block of an offered tool grounded
    (`ground_arguments`), written back exactly as the chat template writes a call.

    `probe_for(prefix)` gives the probe for one call, where `prefix` is the reply
    up to that call's arguments (`...<tool_call>\\n{"name": "N", "arguments": `);
    without it, nothing is filled in, only dropped. `switch_probe_for(prefix)`
    likewise gives the call's switch probe."""
    if "<tool_call>" not in text:
        return text
    parameters = parameters_by_name(tools)
    conversation = Conversation.of(messages)
    out: list[str] = []
    end = 0
    for match in _BLOCK.finditer(text):
        out.append(text[end : match.start()])
        end = match.end()
        block = match.group(0)
        try:
            call = json.loads(match.group(1))
        except ValueError:
            out.append(block)
            continue
        name = call.get("name") if isinstance(call, dict) else None
        arguments = call.get("arguments") if isinstance(call, dict) else None
        if name not in parameters or not isinstance(arguments, Mapping):
            out.append(block)
            continue
        prefix = "".join(out) + _call_head(name)
        probe = probe_for(prefix) if probe_for is not None else None
        switch_probe = switch_probe_for(prefix) if switch_probe_for is not None else None
        grounded = ground_arguments(
            arguments, parameters[name], conversation, probe, name, switch_probe
        )
        call["arguments"] = grounded
        out.append("<tool_call>\n" + json.dumps(call, ensure_ascii=False) + "\n</tool_call>")
    out.append(text[end:])
    return "".join(out)


# Asks the model, after the call's arguments so far, how far the request moves it
# toward writing `value` for parameter `name`: the log-probability of the value
# after the request less that with the request emptied (nats), each taken among
# `choices` when the schema lists them (an enum), or None.
ValueProbe = Callable[[Mapping[str, Any], str, Any, "Sequence[Any] | None"], "float | None"]

#: An enum with more values than this is not put to the model value by value.
MAX_CHOICES = 24

#: A required value the conversation does not spell out is taken as given only
#: when the request moves the model toward it by at least this many nats
#: (calibrated on bench/calibration: see its README).
GIVEN_MARGIN = 1.0


@dataclass(frozen=True)
class Withdrawn:
    """A call taken out of a reply: its required `parameter` held `value`, which
    the conversation does not give (`why`, for the log)."""

    tool: str
    parameter: str
    value: str
    why: str = "is in no message"

    def question(self) -> str:
        """The reply that asks for the missing value instead."""
        what = self.parameter.replace("_", " ")
        return (
            f"To use {self.tool} I need the {what}, and this conversation does not give it. "
            f"Which {what} should I use?"
        )


def _not_given(
    arguments: Mapping[str, Any],
    parameters: Any,
    conversation: Conversation,
    value_probe: ValueProbe | None,
) -> tuple[str, str]:
    """The first required parameter whose value the conversation does not give,
    and why (("", "") if none): an identifier nobody wrote, or, with a
    `value_probe`, a value not spelled out that the request does not move the
    model toward (`GIVEN_MARGIN`)."""
    if not isinstance(parameters, Mapping) or not isinstance(parameters.get("properties"), Mapping):
        return "", ""
    required = parameters.get("required")
    required_names = set(required) if isinstance(required, list) else set()
    before: dict[str, Any] = {}
    for name, value in arguments.items():  # in the order the model wrote them
        schema = parameters["properties"].get(name)
        if name in required_names and isinstance(value, (str, int, float)):
            invented = isinstance(value, str) and is_identifier(value, schema)
            if invented and not conversation.has_identifier(str(value)):
                return str(name), "is in no message"
            if value_probe is not None and not isinstance(value, bool):
                moved = _moved(value, schema, conversation, before, name, value_probe)
                if moved is not None and moved < GIVEN_MARGIN:
                    return str(name), f"is not in the request: it moves the model {moved:+.2f}"
        before[name] = value
    return "", ""


def _choices(schema: Any) -> list[Any] | None:
    """The values an enum parameter lists (`null` aside), or None."""
    if not isinstance(schema, Mapping):
        return None
    if isinstance(schema.get("enum"), list):
        return [v for v in schema["enum"] if v is not None]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            real = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
            return _choices(real[0]) if len(real) == 1 else None
    return None


def _moved(
    value: Any,
    schema: Any,
    conversation: Conversation,
    before: Mapping[str, Any],
    name: str,
    value_probe: ValueProbe,
) -> float | None:
    """How far the request moves the model to `value`; None when the conversation
    spells the value out (no need to ask the model)."""
    if stated(value, schema, conversation, strict=False):
        return None
    if isinstance(value, str) and conversation.has_phrase(value):  # a code: "LHR to JFK"
        return None
    choices = _choices(schema)
    if choices is not None and (len(choices) > MAX_CHOICES or value not in choices):
        return None
    moved = value_probe(before, name, value, choices)
    if moved is not None:
        logger.debug("grounding: %s=%s moved %+.2f by the request", name, json.dumps(value), moved)
    return moved


def withdraw_invented_calls(
    text: str,
    tools: Sequence[Mapping[str, Any]],
    messages: Sequence[Mapping[str, Any]],
    value_probe_for: Callable[[str], ValueProbe] | None = None,
) -> tuple[str, list[Withdrawn]]:
    """`text` without the `<tool_call>` blocks whose required values the
    conversation does not give, and what was withdrawn. A reply left with no call
    and no text asks for the first missing value (`Withdrawn.question`).

    Without `value_probe_for` only identifiers are judged. `value_probe_for(prefix)`
    (`prefix`: the reply up to that call's arguments, as for `ground_reply`) gives
    the model's judgement of the other required values the conversation does not
    spell out; it is used only on a reply to a request (the last message is the
    user's), since a value from a tool result is judged by its text alone."""
    if "<tool_call>" not in text:
        return text, []
    if logger.isEnabledFor(logging.DEBUG):
        asked = [m.get("content") for m in messages if m.get("role") == "user"]
        logger.debug("grounding: the reply to %s", json.dumps(asked[-1] if asked else None))
    parameters = parameters_by_name(tools)
    conversation = Conversation.of(messages)
    withdrawn: list[Withdrawn] = []
    if messages and messages[-1].get("role") != "user":
        value_probe_for = None

    def keep_or_withdraw(match: re.Match[str]) -> str:
        try:
            call = json.loads(match.group(1))
        except ValueError:
            return match.group(0)
        name = call.get("name") if isinstance(call, dict) else None
        arguments = call.get("arguments") if isinstance(call, dict) else None
        if name not in parameters or not isinstance(arguments, Mapping):
            return match.group(0)
        value_probe = None
        if value_probe_for is not None:
            value_probe = value_probe_for(text[: match.start()] + _call_head(name))
        missing, why = _not_given(arguments, parameters[name], conversation, value_probe)
        if not missing:
            return match.group(0)
        value = str(arguments[missing])
        logger.info("grounding: withdrew a %s call (%s=%s %s)", name, missing, value, why)
        withdrawn.append(Withdrawn(str(name), missing, value, why))
        return ""

    kept = _BLOCK.sub(keep_or_withdraw, text)
    if withdrawn and "<tool_call>" not in kept:
        kept = kept.strip() or withdrawn[0].question()
    elif withdrawn:
        kept = re.sub(r"\n{2,}", "\n", kept).strip("\n")
    return kept, withdrawn
