"""The request body the model client sends: encoded once per turn, tool schemas once per agent."""

from __future__ import annotations

import json

import pytest

from runtime.model.settings import SamplingSettings
from runtime.model.transport import EncodedTools, HTTPFailure, encode_body
from runtime.prompting import Prompt, RequestBuilder

TOOLS = [
    {"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "b", "description": "ünïcode"}},
]


def test_a_body_is_compact_utf8_json() -> None:
    body = encode_body({"model": "m", "messages": [{"role": "user", "content": "é"}]})
    assert body == '{"model":"m","messages":[{"role":"user","content":"é"}]}'.encode()


def test_encoded_tools_are_spliced_in_and_read_as_the_plain_list() -> None:
    tools = EncodedTools(TOOLS)
    request = {"model": "m", "messages": [], "tools": tools, "stream": True}
    body = encode_body(request)
    assert json.loads(body) == {**request, "tools": TOOLS}
    assert tools.json in body
    assert json.loads(encode_body({"tools": tools})) == {"tools": TOOLS}


def test_encoded_tools_are_encoded_again_once_the_list_changed() -> None:
    tools = EncodedTools(TOOLS).share()
    extra = {"type": "function", "function": {"name": "c"}}
    tools.append(extra)
    assert tools.encoded() is None
    assert json.loads(encode_body({"tools": tools}))["tools"] == [*TOOLS, extra]


def test_every_turn_sends_the_tools_encoded_once() -> None:
    builder = RequestBuilder(Prompt(), TOOLS)
    first = builder.next([{"role": "user", "content": "hi"}], SamplingSettings())
    second = builder.next([{"role": "user", "content": "hi"}], SamplingSettings())
    assert isinstance(first.tools, EncodedTools) and first.tools is not second.tools
    assert first.tools.encoded() is second.tools.encoded() is not None
    assert json.loads(first.tools.json) == list(first.tools)


def test_nan_is_refused_as_json_does() -> None:
    with pytest.raises(ValueError):
        encode_body({"messages": [{"content": float("nan")}]})


def test_an_error_body_is_parsed_when_it_is_json() -> None:
    failure = HTTPFailure(404, '{"error": {"message": "no such model"}}', {})
    assert failure.body == {"error": {"message": "no such model"}}
    assert str(failure).startswith("Error code: 404 - ")
    assert HTTPFailure(502, "<html>bad gateway</html>", {}).body == "<html>bad gateway</html>"
