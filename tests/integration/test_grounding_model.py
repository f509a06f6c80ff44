"""Grounded optional arguments on the real embedded server (general adapter).

The 135M model leaves out optional values a request states and adds ones it does
not; the server asks the model for each missing optional value and keeps only
what the conversation states (`runtime.model.grounding`). Checked against the
same model served with `--ground_arguments off`, on tools of this test's own.
Calls on an order number nobody gave are withdrawn and the reply asks for it;
switches a request turns ("off", "paid ones too") are set, never against it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.model.adapters import general_adapter_gguf
from runtime.model.local_server import LocalModelServer, local_server_available
from runtime.model.stated import Conversation, stated

pytestmark = [pytest.mark.model]

SPRINKLER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "zone": {"type": "string", "enum": ["lawn", "vegetable_patch", "roses", "hedge"]},
        "minutes": {"type": "integer", "default": 10, "description": "How long to water."},
        "intensity": {
            "type": "string",
            "enum": ["mist", "normal", "soak"],
            "default": "normal",
        },
        "start_time": {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "default": None,
            "description": "When to start, HH:MM; now when unset.",
        },
    },
    "required": ["zone"],
    "additionalProperties": False,
}
FEEDER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "portions": {"type": "integer", "default": 1, "description": "Scoops of food."},
        "pet": {"type": "string", "enum": ["cat", "dog", "rabbit"], "default": "cat"},
    },
    "required": [],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "run_sprinkler", "parameters": SPRINKLER,
     "description": "Water one zone of the garden."}},
    {"type": "function", "function": {"name": "feed_pet", "parameters": FEEDER,
     "description": "Drop food in a pet's bowl from the automatic feeder."}},
]  # fmt: skip
SCHEMAS: dict[str, Any] = {"run_sprinkler": SPRINKLER, "feed_pet": FEEDER}
REQUESTS = [
    "water the roses for 25 minutes",
    "give the lawn a proper soak, it's been dry all week",
    "the vegetable patch needs a light mist",
    "feed the dog 3 scoops",
    "Could you water the hedge?",
    "feed the rabbit",
]


def _server(tmp: pytest.TempPathFactory, *, grounding: bool) -> LocalModelServer:
    if not local_server_available():
        pytest.fail("the embedded model server is not installed (scripts/test.sh installs it)")
    log = tmp.mktemp("llama") / "server.log"
    return LocalModelServer(
        adapter=general_adapter_gguf(), log_path=log, ground_arguments=grounding
    ).start(timeout_s=180)


@pytest.fixture(scope="module")
def grounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalModelServer]:
    server = _server(tmp_path_factory, grounding=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def as_decoded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalModelServer]:
    server = _server(tmp_path_factory, grounding=False)
    yield server
    server.stop()


def _reply(
    server: LocalModelServer, request: str, *, stream: bool = False, tools: list[Any] = TOOLS
) -> str:
    body = {
        "model": server.model_alias,
        "messages": [{"role": "user", "content": request}],
        "tools": tools,
        "temperature": 0,
        "max_tokens": 128,
        "stream": stream,
    }
    http = urllib.request.Request(
        f"{server.base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(http, timeout=120) as response:
        raw = response.read().decode()
    if stream:
        content = "".join(
            (json.loads(line[6:])["choices"] or [{}])[0].get("delta", {}).get("content") or ""
            for line in raw.splitlines()
            if line.startswith("data: {")
        )
    else:
        content = json.loads(raw)["choices"][0]["message"]["content"] or ""
    return str(content)


def _calls(
    server: LocalModelServer, request: str, *, stream: bool = False, tools: list[Any] = TOOLS
) -> list[Any]:
    content = _reply(server, request, stream=stream, tools=tools)
    blocks = content.split("<tool_call>\n")[1:]
    return [json.loads(block.split("\n</tool_call>")[0]) for block in blocks]


def _unstated(calls: list[Any], request: str) -> list[str]:
    conversation = Conversation.of([{"role": "user", "content": request}])
    out = []
    for call in calls:
        schema = SCHEMAS[call["name"]]
        for name, value in call["arguments"].items():
            if name in schema["required"]:
                continue
            verdict = stated(value, schema["properties"][name], conversation, strict=False)
            if verdict is False:
                out.append(f"{call['name']}.{name}={value!r}")
    return out


def test_every_optional_value_served_is_one_the_request_states(
    grounded: LocalModelServer,
) -> None:
    for request in REQUESTS:
        assert _unstated(_calls(grounded, request), request) == [], request


def test_grounding_fills_values_the_model_left_out_and_logs_each_change(
    grounded: LocalModelServer, as_decoded: LocalModelServer
) -> None:
    filled: list[tuple[str, Any]] = []
    withdrawn: list[str] = []
    for request in REQUESTS:
        before = _calls(as_decoded, request)
        after = _calls(grounded, request)
        # grounding adds no call; it may withdraw one on a value nobody gave
        pairs = []
        for new in after:
            while before and before[0]["name"] != new["name"]:
                withdrawn.append(before.pop(0)["name"])
            assert before, (request, after)
            pairs.append((before.pop(0), new))
        withdrawn += [old["name"] for old in before]
        for old, new in pairs:
            # what the model wrote and the request states is kept as it was
            kept = {k: v for k, v in old["arguments"].items() if k in new["arguments"]}
            assert kept == {k: new["arguments"][k] for k in kept}, request
            filled += [(k, v) for k, v in new["arguments"].items() if k not in old["arguments"]]
    assert filled, "the model left no stated optional value out on any request"
    log = Path(grounded.log_path or "").read_text(encoding="utf-8")
    for name, value in filled:
        assert f"grounding: filled {name}={json.dumps(value)}" in log
    for name in withdrawn:
        assert f"grounding: withdrew a {name} call" in log


def test_a_streamed_call_is_grounded_too(
    grounded: LocalModelServer, as_decoded: LocalModelServer
) -> None:
    # Streamed and whole replies may differ by a token (llama.cpp reuses the cached
    # prompt prefix), so this checks the stream on its own terms: nothing unstated
    # goes out, and a value the model left out comes back filled in.
    filled = []
    for request in REQUESTS:
        after = _calls(grounded, request, stream=True)
        assert _unstated(after, request) == [], request
        before = _calls(as_decoded, request, stream=True)
        for old, new in zip(before, after, strict=False):
            if old["name"] == new["name"]:
                filled += [k for k in new["arguments"] if k not in old["arguments"]]
    assert filled


ORDERS: list[Any] = [
    {"type": "function", "function": {
        "name": "cancel_order", "description": "Cancel a customer's order.",
        "parameters": {"type": "object", "properties": {
            "order_id": {"type": "string", "description": "The order number, like QX-20931."},
            "notify_customer": {"type": "boolean", "default": True},
        }, "required": ["order_id"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "refund_order", "description": "Refund an order in full.",
        "parameters": {"type": "object", "properties": {
            "order_id": {"type": "string", "description": "The order number."},
        }, "required": ["order_id"], "additionalProperties": False}}},
]  # fmt: skip
WITHOUT_AN_ORDER_NUMBER = [
    "please cancel my order",
    "I'd like a refund on the order I placed yesterday, it came broken",
    "cancel the order for the customer who just called",
    "refund her order",
]


def test_a_call_on_an_order_number_nobody_gave_is_withdrawn_and_the_reply_asks(
    grounded: LocalModelServer, as_decoded: LocalModelServer
) -> None:
    invented = 0
    for request in WITHOUT_AN_ORDER_NUMBER:
        before = _calls(as_decoded, request, tools=ORDERS)
        invented += bool(before)  # as decoded, the model makes an order number up
        reply = _reply(grounded, request, tools=ORDERS)
        assert "<tool_call>" not in reply, (request, reply)
        if before:
            assert "order id" in reply and reply.rstrip().endswith("?"), (request, reply)
    assert invented, "the model called on no request without an order number"
    log = Path(grounded.log_path or "").read_text(encoding="utf-8")
    assert "grounding: withdrew a " in log


def test_a_call_on_a_given_order_number_goes_out(grounded: LocalModelServer) -> None:
    for request, order in [
        ("cancel order QX-20931 please", "QX-20931"),
        ("refund qx 55120, the parcel never arrived", "QX55120"),
    ]:
        calls = _calls(grounded, request, tools=ORDERS)
        assert calls, request  # not withdrawn: the request gives the number
        written = "".join(ch for ch in calls[0]["arguments"]["order_id"] if ch.isalnum())
        assert written and written.upper() in order.replace("-", ""), (request, calls)


LIGHTS: list[Any] = [
    {"type": "function", "function": {
        "name": "set_lamp", "description": "Switch a lamp on or off.",
        "parameters": {"type": "object", "properties": {
            "lamp": {"type": "string", "enum": ["desk", "reading", "porch", "hall"]},
            "on": {"type": "boolean", "default": True,
                   "description": "True to switch it on, False to switch it off."},
        }, "required": ["lamp"], "additionalProperties": False}}},
]  # fmt: skip
SWITCHED = [
    ("kill the porch lamp", False),
    ("switch the desk lamp off", False),
    ("turn off the hall lamp, I'm going to bed", False),
    ("reading lamp on please", True),
    ("put the porch lamp on", True),
]


def test_a_switch_the_request_turns_is_set_and_never_against_it(
    grounded: LocalModelServer,
) -> None:
    set_right = 0
    for request, wanted in SWITCHED:
        for call in _calls(grounded, request, tools=LIGHTS):
            if "on" in call["arguments"]:
                assert call["arguments"]["on"] is wanted, (request, call)
                set_right += call["arguments"]["on"] is False
    assert set_right, "no lamp was switched off"
    log = Path(grounded.log_path or "").read_text(encoding="utf-8")
    assert "set_lamp: set on=false" in log


def test_eval_keeps_each_local_servers_log_where_asked(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    data = root / "bench" / "calibration" / "office_ops.items.jsonl"
    requests = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()][:2]
    result = subprocess.run(
        [sys.executable, "-m", "runtime", "eval", "--data", str(data), "--limit", "2",
         "--local", "general=general", "--server-log", str(tmp_path / "logs"),
         "--out", str(tmp_path / "report.json")],
        capture_output=True, text=True, cwd=root, timeout=600, check=False,
        env={**os.environ, "AGENTRT_GROUNDING_LOG": "DEBUG"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "logs" / "general.log").read_text(encoding="utf-8")
    for item in requests:
        request = next(m["content"] for m in item["messages"] if m["role"] == "user")
        assert f"grounding: the reply to {json.dumps(request)}" in log
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert len(report["models"]["general"]["predictions"]) == 2


HEATING: list[Any] = [
    {"type": "function", "function": {
        "name": "set_heater", "description": "Switch on the electric heater in one room.",
        "parameters": {"type": "object", "properties": {
            "room": {"type": "string", "enum": ["kitchen", "bathroom", "garage", "office"]},
            "level": {"type": "integer", "default": 2, "description": "Heat level, 1 to 3."},
        }, "required": ["room"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "add_contact", "description": "Save a person to the address book.",
        "parameters": {"type": "object", "properties": {
            "name": {"type": "string", "description": "The person's full name."},
            "phone": {"type": "string", "default": ""},
        }, "required": ["name"], "additionalProperties": False}}},
]  # fmt: skip
WITHOUT_THE_VALUE = [
    "turn the heater on",
    "heater to level 3 please",
    "add a new contact",
    "save this person to my contacts",
]
WITH_THE_VALUE = [
    "warm up the bathroom",
    "kitchen heater to level 3",
    "add Priya Natarajan to my contacts",
    "save Tom Okafor, his number is 0151 496 0123",
]


def test_a_required_value_the_request_does_not_give_is_asked_for(
    grounded: LocalModelServer,
) -> None:
    asked = 0
    for request in WITHOUT_THE_VALUE:
        # the model may also abstain itself, or guess a value it is sure of
        asked += _reply(grounded, request, tools=HEATING).startswith("To use ")
    assert asked, "no request without its value was asked about"
    log = Path(grounded.log_path or "").read_text(encoding="utf-8")
    assert "is not in the request: it moves the model" in log
    for request in WITH_THE_VALUE:
        reply = _reply(grounded, request, tools=HEATING)
        assert not reply.startswith("To use "), (request, reply)
