"""Optional arguments grounded in the conversation (`runtime.model.grounding`)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from runtime.model.grounding import (
    GIVEN_MARGIN,
    MAX_OFFERS,
    SWITCH_CONFIDENCE,
    Withdrawn,
    ground_arguments,
    ground_reply,
    withdraw_invented_calls,
)
from runtime.model.stated import Conversation, stated
from runtime.prompting.similar_requests import HEADER

BLINDS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "window": {"type": "string", "enum": ["front_room", "study", "attic"]},
        "position": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
        "speed": {"type": "string", "enum": ["slow", "normal", "fast"], "default": "normal"},
        "label": {"type": "string", "default": ""},
        "tilt": {"type": "boolean", "default": False},
        "when": {"type": "string", "description": "Day, YYYY-MM-DD.", "default": ""},
        "slot": {"type": "string", "pattern": "^[0-9]{2}:[0-9]{2}$", "default": "08:00"},
    },
    "required": ["window"],
}
TOOLS = [{"type": "function", "function": {"name": "move_blinds", "parameters": BLINDS}}]


def said(text: str) -> Conversation:
    return Conversation.of([{"role": "user", "content": text}])


@pytest.mark.parametrize(
    ("value", "schema", "text"),
    [
        (40, BLINDS["properties"]["position"], "open the study blinds to 40%"),
        (3, {"type": "integer"}, "for three people"),
        (1500, {"type": "number"}, "a budget of 1,500 pounds"),
        (2.5, {"type": "number"}, "wait 2.5 seconds"),
        (150, {"type": "number"}, "max 150/night"),
        ("front_room", BLINDS["properties"]["window"], "the Front-Room blinds"),
        ("2027-03-09", BLINDS["properties"]["when"], "on March 9th 2027"),
        ("2027-03-09", BLINDS["properties"]["when"], "on 2027-03-09"),
        ("Back by five", {"type": "string"}, "label it 'back by five'"),
        ("slow", BLINDS["properties"]["speed"], "the slow ones"),  # plural or singular
        ("front_room", BLINDS["properties"]["window"], "both front rooms"),
    ],
)
def test_values_the_conversation_states(value: Any, schema: Any, text: str) -> None:
    assert stated(value, schema, said(text), strict=True) is True


@pytest.mark.parametrize(
    ("value", "schema", "text"),
    [
        (400, {"type": "integer"}, "flight LH400 please"),  # inside an id
        (12, {"type": "integer"}, "on 2026-12-08"),  # inside a date
        (8, {"type": "integer"}, "on 12/8"),
        (19, {"type": "integer"}, "at 19:00"),  # inside a time
        ("fast", BLINDS["properties"]["speed"], "close the attic blinds"),
        ("2027-03-10", BLINDS["properties"]["when"], "on March 9th 2027"),
        ("2026-03-09", BLINDS["properties"]["when"], "on March 9th 2027"),
        ("the attic", {"type": "string"}, "close the study blinds"),
        ("2", {"type": "string"}, "for 2 nights"),  # a free string needs a telling word
        ("to the", {"type": "string"}, "to the garden"),
    ],
)
def test_values_it_does_not_state(value: Any, schema: Any, text: str) -> None:
    assert stated(value, schema, said(text), strict=True) is False


def test_lenient_reading_keeps_a_value_with_a_telling_word_or_a_relative_date() -> None:
    text = said("lower the blinds in the study slowly tomorrow")
    assert stated("slow", BLINDS["properties"]["speed"], text, strict=False) is False
    assert stated("study", BLINDS["properties"]["window"], text, strict=False) is True
    assert stated("the study blinds", {"type": "string"}, text, strict=False) is True
    assert stated("2027-01-01", BLINDS["properties"]["when"], text, strict=False) is True
    assert stated("2027-01-01", BLINDS["properties"]["when"], text, strict=True) is False


@pytest.mark.parametrize(
    ("value", "schema"),
    [
        (True, BLINDS["properties"]["tilt"]),
        ("07:30", BLINDS["properties"]["slot"]),
        (["a"], {"type": "array", "items": {"type": "string"}}),
        ({"a": 1}, {"type": "object"}),
        (None, BLINDS["properties"]["position"]),
    ],
)
def test_kinds_left_to_the_model(value: Any, schema: Any) -> None:
    assert stated(value, schema, said("anything at all"), strict=False) is None


def test_worked_requests_and_tool_descriptions_do_not_ground_a_value() -> None:
    conversation = Conversation.of(
        [
            {"role": "user", "content": f"{HEADER}\n- close the attic blinds fast -> ..."},
            {"role": "user", "content": "close the study blinds"},
        ]
    )
    assert not conversation.has_phrase("fast")
    assert conversation.has_phrase("study")


def test_tool_results_ground_values() -> None:
    conversation = Conversation.of(
        [
            {"role": "user", "content": "find me a hotel"},
            {"role": "assistant", "content": None, "tool_calls": []},
            {"role": "tool", "content": json.dumps({"hotel_id": "HTL-40117", "rooms": 7})},
        ]
    )
    assert stated("HTL-40117", {"type": "string"}, conversation, strict=True)
    assert stated(7, {"type": "integer"}, conversation, strict=True)


class ScriptedProbe:
    """Writes the open parameter it ranks first (the table's order) with the table's
    value, and records what it was offered each time."""

    def __init__(self, answers: Mapping[str, Any]) -> None:
        self.answers = dict(answers)
        self.offered: list[tuple[dict[str, Any], list[str]]] = []

    def __call__(
        self, arguments: Mapping[str, Any], open_: Mapping[str, Any]
    ) -> tuple[str, Any] | None:
        self.offered.append((dict(arguments), list(open_)))
        for name, value in self.answers.items():
            if name in open_:
                return name, value
        return None


def test_fill_adds_the_stated_optional_values_in_the_order_the_model_ranks_them() -> None:
    probe = ScriptedProbe({"speed": "slow", "label": "study", "position": 40, "when": "x"})
    out = ground_arguments(
        {"window": "study"}, BLINDS, said("study blinds to 40 percent, slowly"), probe
    )
    # "slow" is not a word of the request; "study" is taken by `window`; 40 is stated
    assert out == {"window": "study", "position": 40}
    # offered only the kinds it can judge, each once, with what was filled in so far
    assert probe.offered[0] == ({"window": "study"}, ["position", "speed", "label", "when"])
    assert probe.offered[3] == ({"window": "study", "position": 40}, ["when"])
    assert len(probe.offered) == 4


def test_a_number_goes_to_the_parameter_the_model_ranks_first() -> None:
    schema = {
        "type": "object",
        "properties": {"q": {"type": "string"}, "max_price": {"type": "number"},
                       "limit": {"type": "integer"}},
        "required": ["q"],
    }  # fmt: skip
    probe = ScriptedProbe({"limit": 5, "max_price": 5})
    out = ground_arguments({"q": "mugs"}, schema, said("top 5 mugs"), probe)
    assert out == {"q": "mugs", "limit": 5}


def test_a_text_value_that_restates_the_tool_or_another_argument_is_not_filled() -> None:
    schema = {
        "type": "object",
        "properties": {"ref": {"type": "string"}, "until": {"type": "string"},
                       "note": {"type": "string"}},
        "required": ["ref"],
    }  # fmt: skip
    conversation = said("hold booking QX81 until friday noon please, my flight is late")
    restating = ScriptedProbe({"note": "hold booking"})
    assert ground_arguments({"ref": "QX81"}, schema, conversation, restating, "hold_booking") == {
        "ref": "QX81"
    }
    holding = ScriptedProbe({"note": "QX81 until friday"})
    assert ground_arguments({"ref": "QX81"}, schema, conversation, holding, "hold_booking") == {
        "ref": "QX81"
    }
    fresh = ScriptedProbe({"note": "my flight is late"})
    assert ground_arguments({"ref": "QX81"}, schema, conversation, fresh, "hold_booking") == {
        "ref": "QX81",
        "note": "my flight is late",
    }


def test_at_most_max_offers_parameters_are_offered_per_call() -> None:
    many = {f"s{i}": {"type": "string"} for i in range(MAX_OFFERS + 4)}
    schema = {"type": "object", "properties": {"x": {"type": "string"}, **many}, "required": ["x"]}
    probe = ScriptedProbe({name: "nothing said" for name in many})
    assert ground_arguments({"x": "y"}, schema, said("y"), probe) == {"x": "y"}
    assert len(probe.offered) == MAX_OFFERS


def test_fill_stops_when_the_model_writes_nothing_usable() -> None:
    probe = ScriptedProbe({})
    assert ground_arguments({"window": "study"}, BLINDS, said("study 40"), probe) == {
        "window": "study"
    }
    assert len(probe.offered) == 1


def test_fill_skips_a_value_equal_to_the_default() -> None:
    probe = ScriptedProbe({"speed": "normal"})
    out = ground_arguments({"window": "study"}, BLINDS, said("study blinds, normal speed"), probe)
    assert out == {"window": "study"}


def test_drop_removes_made_up_optional_values_and_keeps_required_and_unjudged_ones() -> None:
    out = ground_arguments(
        {"window": "attic", "speed": "fast", "tilt": True, "slot": "09:00", "position": 5},
        BLINDS,
        said("close the attic blinds"),
    )
    assert out == {"window": "attic", "tilt": True, "slot": "09:00"}
    # a required value is never the grounding's to judge, stated or not
    assert ground_arguments({"window": "study"}, BLINDS, said("the attic")) == {"window": "study"}


def test_ground_reply_rewrites_each_call_block_and_leaves_the_rest() -> None:
    reply = (
        '<tool_call>\n{"name": "move_blinds", "arguments": {"window": "study", "speed": "fast"}}'
        '\n</tool_call>\n<tool_call>\n{"name": "move_blinds", "arguments": {"window": "attic"}}'
        "\n</tool_call>"
    )
    prefixes: list[str] = []

    def probe_for(prefix: str) -> ScriptedProbe:
        prefixes.append(prefix)
        return ScriptedProbe({"position": 20})

    out = ground_reply(
        reply, TOOLS, [{"role": "user", "content": "study and attic blinds to 20"}], probe_for
    )
    blocks = [json.loads(b) for b in re.findall(r"<tool_call>\n(.*?)\n</tool_call>", out)]
    assert [b["arguments"] for b in blocks] == [
        {"window": "study", "position": 20},
        {"window": "attic", "position": 20},
    ]
    assert prefixes[0] == '<tool_call>\n{"name": "move_blinds", "arguments": '
    assert prefixes[1].startswith(out.split("\n</tool_call>")[0])


@pytest.mark.parametrize(
    "reply",
    [
        "It is sunny.",
        '<tool_call>\n{"name": "other_tool", "arguments": {"x": 1}}\n</tool_call>',
        '<tool_call>\n{"name": "move_blinds", "arguments": {"window": \n</tool_call>',
        '<tool_call>\n{"name": "move_blinds", "arguments": [1]}\n</tool_call>',
    ],
)
def test_ground_reply_leaves_answers_and_unknown_or_broken_calls_as_they_are(reply: str) -> None:
    assert ground_reply(reply, TOOLS, [{"role": "user", "content": "hi"}]) == reply


@pytest.mark.parametrize(
    ("value", "text", "expected"),
    [
        ("U24512", "is U2 4512 on time?", True),
        ("SO-117450", "so-117450 status", True),
        ("EK30", "what gate does ek30 leave from", True),
        ("alex.m@example.com", "send alex.m@example.com a coupon", True),
        ("K7Q2ZP", "please cancel my booking, plans changed", False),
        ("support@customer.com", "send the customer a discount code", False),
        ("SO-104233", "she wants to send the hoodie back", False),
    ],
)
def test_an_identifier_is_stated_by_its_letters_and_digits_in_order(
    value: str, text: str, expected: bool
) -> None:
    for strict in (True, False):
        assert stated(value, {"type": "string"}, said(text), strict=strict) is expected


@pytest.mark.parametrize(
    ("value", "schema"),
    [
        ("2026-12-08", {"type": "string"}),  # a date, judged as one
        ("2026-12-08T10:00", {"type": "string", "format": "date-time"}),
        ("10:30", {"type": "string"}),
        ("v2", {"type": "string", "enum": ["v1", "v2"]}),  # the schema lists it
        ("living room", {"type": "string"}),  # words, not an identifier
    ],
)
def test_dates_times_listed_values_and_words_are_not_identifiers(value: str, schema: Any) -> None:
    reply = (
        '<tool_call>\n{"name": "do", "arguments": {"x": ' + json.dumps(value) + "}}\n</tool_call>"
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": "do",
                "parameters": {"type": "object", "properties": {"x": schema}, "required": ["x"]},
            },
        }
    ]
    assert withdraw_invented_calls(reply, tools, [{"role": "user", "content": "hi"}]) == (reply, [])


BOOKINGS = [
    {
        "type": "function",
        "function": {
            "name": "cancel_booking",
            "parameters": {
                "type": "object",
                "properties": {
                    "booking_ref": {"type": "string", "pattern": "^[A-Z0-9]{6}$"},
                    "reason": {"type": "string", "default": ""},
                },
                "required": ["booking_ref"],
            },
        },
    }
]


def _call(name: str, arguments: dict[str, Any]) -> str:
    body = json.dumps({"name": name, "arguments": arguments})
    return f"<tool_call>\n{body}\n</tool_call>"


def test_a_call_on_an_invented_identifier_is_withdrawn_and_the_reply_asks_for_it() -> None:
    reply = _call("cancel_booking", {"booking_ref": "K7Q2ZP", "reason": "plans changed"})
    messages = [
        {"role": "user", "content": f"{HEADER}\ncancel K7Q2ZP -> cancel_booking"},
        {"role": "user", "content": "please cancel my booking, plans changed"},
    ]
    text, withdrawn = withdraw_invented_calls(reply, BOOKINGS, messages)
    assert withdrawn == [Withdrawn("cancel_booking", "booking_ref", "K7Q2ZP")]
    assert "<tool_call>" not in text
    assert text == withdrawn[0].question()
    assert "booking ref" in text and text.endswith("?")


def test_only_the_invented_call_of_several_is_withdrawn() -> None:
    reply = "\n".join(
        [
            _call("cancel_booking", {"booking_ref": "QX81LM"}),
            _call("cancel_booking", {"booking_ref": "QX18LN"}),
        ]
    )
    messages = [{"role": "user", "content": "cancel QX81LM and QX81LN, the trip got scrapped"}]
    text, withdrawn = withdraw_invented_calls(reply, BOOKINGS, messages)
    assert [w.value for w in withdrawn] == ["QX18LN"]
    assert text == _call("cancel_booking", {"booking_ref": "QX81LM"})


def test_an_identifier_from_a_tool_result_is_not_invented() -> None:
    reply = _call("cancel_booking", {"booking_ref": "ZP44RT"})
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "cancel my last booking"},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "content": json.dumps({"last_booking": "ZP44RT"})},
    ]
    assert withdraw_invented_calls(reply, BOOKINGS, messages) == (reply, [])


FANS = [
    {
        "type": "function",
        "function": {
            "name": "set_fan",
            "parameters": {
                "type": "object",
                "properties": {
                    "room": {"type": "string", "enum": ["bedroom", "study", "lounge"]},
                    "speed": {"type": "integer"},
                    "label": {"type": "string"},
                },
                "required": ["room", "speed"],
            },
        },
    }
]


class ScriptedValues:
    """Moves the model by the table's nats toward each (parameter, value), and
    records what it was asked."""

    def __init__(self, moved: dict[tuple[str, Any], float | None]) -> None:
        self.moved = moved
        self.asked: list[tuple[str, str, dict[str, Any], str, Any, Any]] = []

    def __call__(self, prefix: str) -> Callable[..., float | None]:
        def probe(before: Any, name: str, value: Any, choices: Any) -> float | None:
            self.asked.append((prefix, "", dict(before), name, value, choices))
            return self.moved[(name, value)]

        return probe


def test_a_required_value_the_request_does_not_move_the_model_to_is_withdrawn() -> None:
    reply = _call("set_fan", {"room": "study", "speed": 2})
    values = ScriptedValues({("room", "study"): 0.35})
    messages = [{"role": "user", "content": "set the fan to speed 2"}]
    text, withdrawn = withdraw_invented_calls(reply, FANS, messages, values)
    assert [(w.parameter, w.value) for w in withdrawn] == [("room", "study")]
    assert "+0.35" in withdrawn[0].why
    assert text == withdrawn[0].question() and "room" in text
    # asked among the values the schema lists, after the reply up to the arguments
    prefix, _, before, name, value, choices = values.asked[0]
    assert prefix == '<tool_call>\n{"name": "set_fan", "arguments": '
    assert (before, name, value, choices) == ({}, "room", "study", ["bedroom", "study", "lounge"])
    assert len(values.asked) == 1  # speed 2 is in the request: not put to the model


def test_a_value_the_request_moves_the_model_to_is_kept() -> None:
    reply = _call("set_fan", {"room": "lounge", "speed": 5})
    values = ScriptedValues({("room", "lounge"): GIVEN_MARGIN + 0.5, ("speed", 5): 3.0})
    messages = [{"role": "user", "content": "living room fan on full blast"}]
    assert withdraw_invented_calls(reply, FANS, messages, values) == (reply, [])
    assert [(a[2], a[3]) for a in values.asked] == [({}, "room"), ({"room": "lounge"}, "speed")]


def test_a_value_the_model_cannot_judge_and_optional_values_are_left_alone() -> None:
    reply = _call("set_fan", {"room": "bedroom", "speed": 1, "label": "night"})
    values = ScriptedValues({("room", "bedroom"): None, ("speed", 1): None})
    messages = [{"role": "user", "content": "slowest fan setting please"}]
    assert withdraw_invented_calls(reply, FANS, messages, values) == (reply, [])
    assert "label" not in [a[3] for a in values.asked]


def test_a_value_the_request_spells_out_is_not_put_to_the_model() -> None:
    # a code whose shape the schema fixes is not judged by `stated`, but it is there
    tools = [{"type": "function", "function": {"name": "fly", "parameters": {
        "type": "object", "required": ["origin"],
        "properties": {"origin": {"type": "string", "pattern": "^[A-Z]{3}$"}}}}}]  # fmt: skip
    reply = _call("fly", {"origin": "LHR"})
    values = ScriptedValues({("origin", "LHR"): -2.5})
    messages = [{"role": "user", "content": "Need flights LHR to JFK on 2027-01-12"}]
    assert withdraw_invented_calls(reply, tools, messages, values) == (reply, [])
    assert values.asked == []


def test_values_are_judged_by_the_model_only_in_a_reply_to_a_request() -> None:
    # after a tool result, a value may come from it or from the model's reading
    # of it: identifiers are judged by their text, other values not at all
    reply = _call("set_fan", {"room": "study", "speed": 2})
    values = ScriptedValues({("room", "study"): -3.0})
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "set the fan to speed 2"},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "content": json.dumps({"ok": True})},
    ]
    assert withdraw_invented_calls(reply, FANS, messages, values) == (reply, [])
    assert values.asked == []


class ScriptedSwitches:
    """Gives each boolean parameter the table's p(true) and records the calls."""

    def __init__(self, p_true: Mapping[str, float | None]) -> None:
        self.p_true = dict(p_true)
        self.asked: list[tuple[dict[str, Any], str]] = []

    def __call__(self, arguments: Mapping[str, Any], name: str) -> float | None:
        self.asked.append((dict(arguments), name))
        return self.p_true.get(name)


LIGHTS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "room": {"type": "string"},
        "on": {"type": "boolean", "default": True},
        "dim": {"anyOf": [{"type": "boolean"}, {"type": "null"}], "default": False},
        "night_mode": {"type": "boolean", "default": False},
    },
    "required": ["room"],
}


def test_a_switch_is_set_only_when_the_model_is_sure_it_is_not_the_default() -> None:
    sure = 1.0 - (1.0 - SWITCH_CONFIDENCE) / 2
    unsure = (1.0 + SWITCH_CONFIDENCE) / 2 - 0.2
    probe = ScriptedSwitches({"on": 1.0 - sure, "dim": sure, "night_mode": unsure})
    out = ground_arguments({"room": "kitchen"}, LIGHTS, said("kitchen off"), switch_probe=probe)
    assert out == {"room": "kitchen", "on": False, "dim": True}
    assert [name for _, name in probe.asked] == ["on", "dim", "night_mode"]
    assert probe.asked[1][0] == {"room": "kitchen", "on": False}  # asked after what was set


def test_a_switch_the_model_prefers_at_its_default_or_cannot_judge_is_left_out() -> None:
    probe = ScriptedSwitches({"on": 0.99, "dim": None, "night_mode": 0.01})
    out = ground_arguments({"room": "kitchen"}, LIGHTS, said("kitchen on"), switch_probe=probe)
    assert out == {"room": "kitchen"}


def test_a_switch_the_call_already_has_is_not_asked_about() -> None:
    probe = ScriptedSwitches({"on": 0.0})
    out = ground_arguments({"room": "hall", "on": True}, LIGHTS, said("hall"), switch_probe=probe)
    assert out == {"room": "hall", "on": True}
    assert "on" not in [name for _, name in probe.asked]
