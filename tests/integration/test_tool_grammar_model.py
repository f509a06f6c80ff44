"""Constrained decoding on the real embedded server: the bare 135M model, which on
its own invents tool names and drops required arguments, writes only calls that
name an offered tool and satisfy its schema when it decodes under the tools' grammar.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from runtime.model.local_server import LocalModelServer, local_server_available

pytestmark = [pytest.mark.model]

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "set_fan",
            "description": "Switch the ceiling fan in one room.",
            "parameters": {
                "type": "object",
                "properties": {
                    "room": {"type": "string", "enum": ["kitchen", "bedroom", "office"]},
                    "speed": {"type": "integer"},
                    "on": {"type": "boolean"},
                },
                "required": ["room", "on"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "water_plant",
            "description": "Water one of the balcony plants.",
            "parameters": {
                "type": "object",
                "properties": {"plant": {"type": "string", "enum": ["fern", "basil"]}},
                "required": ["plant"],
            },
        },
    },
]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}  # type: ignore[index]
REQUESTS = [
    "kitchen fan on, it's boiling",
    "the basil looks thirsty",
    "Could you switch off the fan in the office?",
    "please do something about the bedroom",
]


def _server(grammar: bool, tmp: pytest.TempPathFactory) -> LocalModelServer:
    if not local_server_available():
        pytest.fail("the embedded model server is not installed (scripts/test.sh installs it)")
    log = tmp.mktemp("llama") / "server.log"
    return LocalModelServer(log_path=log, tool_grammar=grammar).start(timeout_s=180)


@pytest.fixture(scope="module")
def constrained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalModelServer]:
    server = _server(True, tmp_path_factory)
    yield server
    server.stop()


def _post(server: LocalModelServer, request: str, tool_choice: str, **extra: object) -> Any:
    body = {
        "model": server.model_alias,
        "messages": [{"role": "user", "content": request}],
        "tools": TOOLS,
        "tool_choice": tool_choice,
        "temperature": 0,
        "max_tokens": 96,
        **extra,
    }
    http = urllib.request.Request(
        f"{server.base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    return urllib.request.urlopen(http, timeout=120)


def _reply(server: LocalModelServer, request: str, tool_choice: str) -> str:
    with _post(server, request, tool_choice) as response:
        content: str = json.load(response)["choices"][0]["message"]["content"] or ""
    return content


def _calls(content: str) -> list[dict[str, object]]:
    blocks = content.split("<tool_call>")[1:]
    calls = []
    for block in blocks:
        assert "</tool_call>" in block, content
        calls.append(json.loads(block.split("</tool_call>")[0]))
    return calls


@pytest.mark.parametrize("request_text", REQUESTS)
def test_required_calls_name_an_offered_tool_and_match_its_schema(
    constrained: LocalModelServer, request_text: str
) -> None:
    content = _reply(constrained, request_text, "required")
    calls = _calls(content)
    assert calls, content
    for call in calls:
        assert set(call) == {"name", "arguments"}, content
        assert call["name"] in SCHEMAS, content
        jsonschema.validate(call["arguments"], SCHEMAS[str(call["name"])])


def test_auto_leaves_the_model_free_to_answer_in_words(constrained: LocalModelServer) -> None:
    content = _reply(constrained, "hi there! how are you today?", "auto")
    # Whatever the bare model chooses, a reply is either plain text or well-formed calls.
    if content.lstrip().startswith("<tool_call>"):
        for call in _calls(content):
            assert call["name"] in SCHEMAS
    else:
        assert content and not content.startswith("<")


@pytest.fixture(scope="module")
def every_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalModelServer]:
    log = tmp_path_factory.mktemp("llama") / "server.log"
    server = LocalModelServer(log_path=log, call_form="every-key").start(timeout_s=180)
    yield server
    server.stop()


def _streamed(server: LocalModelServer, request: str) -> str:
    text = ""
    with _post(server, request, "required", stream=True) as response:
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue  # blank lines between events, ": ping" comments
            data = line.removeprefix("data:").strip()
            if data != "[DONE]":
                delta = json.loads(data)["choices"][0].get("delta") or {}
                text += delta.get("content") or ""
    return text


@pytest.mark.parametrize("request_text", REQUESTS)
def test_the_every_key_form_answers_calls_without_the_unstated_nulls(
    every_key: LocalModelServer, request_text: str
) -> None:
    # The grammar makes the bare model write `speed` every time (a number or null);
    # what the server sends has only what the schema takes, streamed or not, alike.
    content = _reply(every_key, request_text, "required")
    calls = _calls(content)
    assert calls, content
    for call in calls:
        assert call["name"] in SCHEMAS, content
        jsonschema.validate(call["arguments"], SCHEMAS[str(call["name"])])
        assert None not in dict(call["arguments"]).values(), content  # type: ignore[call-overload]
    assert _streamed(every_key, request_text) == content
