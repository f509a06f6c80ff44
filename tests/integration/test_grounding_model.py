"""Grounded optional arguments on the real embedded server (general adapter).

The 135M model leaves out optional values a request states and adds ones it does
not; the server asks the model for each missing optional value and keeps only
what the conversation states (`runtime.model.grounding`). Checked against the
same model served with `--ground_arguments off`, on tools of this test's own.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.model.adapters import general_adapter_gguf
from runtime.model.grounding import Conversation, stated
from runtime.model.local_server import LocalModelServer, local_server_available

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


def _calls(server: LocalModelServer, request: str, *, stream: bool = False) -> list[Any]:
    body = {
        "model": server.model_alias,
        "messages": [{"role": "user", "content": request}],
        "tools": TOOLS,
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
    for request in REQUESTS:
        before = _calls(as_decoded, request)
        after = _calls(grounded, request)
        assert [c["name"] for c in after] == [c["name"] for c in before], request
        for old, new in zip(before, after, strict=True):
            # what the model wrote and the request states is kept as it was
            kept = {k: v for k, v in old["arguments"].items() if k in new["arguments"]}
            assert kept == {k: new["arguments"][k] for k in kept}, request
            filled += [(k, v) for k, v in new["arguments"].items() if k not in old["arguments"]]
    assert filled, "the model left no stated optional value out on any request"
    log = Path(grounded.log_path or "").read_text(encoding="utf-8")
    for name, value in filled:
        assert f"grounding: filled {name}={json.dumps(value)}" in log


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
