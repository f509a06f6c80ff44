"""Model servers that misbehave: malformed replies, cut streams, silence (issue 13, cases 3, 4).

Every fault ends the run with `model_error`, a sentence saying what the server
did, and a `run.finished` record; nothing from a broken reply is executed.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from runtime import tool
from runtime.agent import Agent, RunStatus
from runtime.audit.chain import HashChainSink
from runtime.audit.events import Event, Field
from runtime.model import ModelError, OpenAICompatibleClient, RetryPolicy, SamplingSettings
from runtime.model.client import DEFAULT_TURN_TIMEOUT_S
from runtime.policy.decision import allow_all
from runtime.testing import ScriptedReply, ScriptedServer

ROOT = Path(__file__).resolve().parents[2]
ONE_TRY = RetryPolicy(attempts=1)
FAST_RETRY = RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.01)
USER = [{"role": "user", "content": "hi"}]
ran: list[dict[str, Any]] = []


@tool
def transfer(to: str, cents: int) -> str:
    """Move money (the side effect a cut stream must never trigger).

    Args:
        to: Account.
        cents: Amount.
    """
    ran.append({"to": to, "cents": cents})
    return "sent"


@pytest.fixture(autouse=True)
def _clear() -> None:
    ran.clear()


def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return "data: " + json.dumps(body)


CALL_DELTAS = [
    chunk({"role": "assistant", "content": ""}),
    chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "chatcmpl-tool-1",
                    "type": "function",
                    "function": {"name": "transfer", "arguments": ""},
                }
            ]
        }
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"to": "x", "cents": 5}'}}]}),
]

MALFORMED = {
    "html-page": (
        False,
        ScriptedReply.captured(
            body="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"
        ),
    ),
    "cut-off-json": (
        False,
        ScriptedReply.captured(body='{"id": "chatcmpl-1", "choices": [{"index": 0, "mess'),
    ),
    "message-null": (
        False,
        ScriptedReply.captured(
            body={"id": "x", "choices": [{"index": 0, "message": None, "finish_reason": "stop"}]}
        ),
    ),
    "broken-sse-event": (
        True,
        ScriptedReply.captured(sse=[*CALL_DELTAS[:2], 'data: {"id": "chatcmpl-1", "cho']),
    ),
    "html-instead-of-a-stream": (
        True,
        ScriptedReply.captured(body="<html>maintenance</html>", content_type="text/html"),
    ),
}


def finished_records(path: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [r["fields"] for r in records if r["event"] == Event.RUN_FINISHED]


@pytest.mark.parametrize("name", sorted(MALFORMED))
async def test_a_malformed_reply_ends_the_run_with_model_error_and_run_finished(
    name: str, tmp_path: Path
) -> None:
    stream, reply = MALFORMED[name]
    sink = HashChainSink(tmp_path / "audit.jsonl")
    with ScriptedServer([reply]) as server:
        client = OpenAICompatibleClient(server.base_url, server.model, stream=stream, retry=ONE_TRY)
        result = await Agent(client, [transfer], audit=sink, policy=allow_all()).run("pay x")
        await client.aclose()
    sink.close()
    assert result.status is RunStatus.MODEL_ERROR
    assert result.error is not None
    assert result.error.startswith("bad_response: ")
    assert "not a chat completion" in result.error
    assert ran == []
    [finished] = finished_records(tmp_path / "audit.jsonl")
    assert finished[Field.STATUS] == "model_error"


@pytest.mark.parametrize(
    "sse",
    [
        pytest.param(CALL_DELTAS, id="cut-before-finish-reason"),
        pytest.param([*CALL_DELTAS, "data: [DONE]"], id="done-without-finish-reason"),
    ],
)
async def test_a_stream_cut_before_its_finish_reason_runs_none_of_its_calls(
    sse: list[str], tmp_path: Path
) -> None:
    sink = HashChainSink(tmp_path / "audit.jsonl")
    replies = [ScriptedReply.captured(sse=sse)] * FAST_RETRY.attempts
    with ScriptedServer(replies) as server:
        client = OpenAICompatibleClient(
            server.base_url, server.model, stream=True, retry=FAST_RETRY
        )
        result = await Agent(client, [transfer], audit=sink, policy=allow_all()).run("pay x")
        await client.aclose()
        asked = len(server.requests)
    sink.close()
    assert ran == []
    assert result.tool_calls == []
    assert result.status is RunStatus.MODEL_ERROR
    assert result.error is not None and result.error.startswith("truncated: ")
    assert "nothing from it is used" in result.error
    assert asked == FAST_RETRY.attempts  # a cut stream is retried: nothing of it ran
    [finished] = finished_records(tmp_path / "audit.jsonl")
    assert finished[Field.STATUS] == "model_error"
    records = (tmp_path / "audit.jsonl").read_text()
    assert Event.TOOL_PROPOSED not in records


async def test_a_complete_stream_without_done_is_used() -> None:
    sse = [*CALL_DELTAS, chunk({}, "tool_calls")]
    with ScriptedServer([ScriptedReply.captured(sse=sse)]) as server:
        client = OpenAICompatibleClient(server.base_url, server.model, stream=True, retry=ONE_TRY)
        turn = await client.complete(USER, [], SamplingSettings())
        await client.aclose()
    assert [(c.name, json.loads(c.arguments)) for c in turn.tool_calls] == [
        ("transfer", {"to": "x", "cents": 5})
    ]


def test_default_time_limits_are_ones_a_person_waits_for() -> None:
    client = OpenAICompatibleClient("http://127.0.0.1:9/v1", "m")
    assert client.turn_timeout == DEFAULT_TURN_TIMEOUT_S <= 60
    assert client.timeout <= client.turn_timeout
    assert client.idle_timeout <= client.turn_timeout
    slow = OpenAICompatibleClient("http://127.0.0.1:9/v1", "m", timeout=300)
    assert slow.turn_timeout == 300  # one request may take all of its time
    assert OpenAICompatibleClient("http://127.0.0.1:9/v1", "m", timeout_s=7).timeout == 7
    with pytest.raises(ValueError, match="idle_timeout"):
        OpenAICompatibleClient("http://127.0.0.1:9/v1", "m", idle_timeout=0)


async def test_a_server_that_never_answers_is_given_up_on_per_attempt() -> None:
    with ScriptedServer([ScriptedReply.hang()] * 2) as server:
        client = OpenAICompatibleClient(
            server.base_url, server.model, timeout=0.3, retry=RetryPolicy(2, 0.001, 0.01)
        )
        started = time.monotonic()
        with pytest.raises(ModelError) as caught:
            await client.complete(USER, [], SamplingSettings())
        elapsed = time.monotonic() - started
        await client.aclose()
    assert caught.value.kind == "timeout" and caught.value.attempts == 2
    assert "did not answer within 0.3 s" in str(caught.value)
    assert 0.6 <= elapsed < 3


async def test_the_turn_deadline_bounds_all_attempts() -> None:
    with ScriptedServer([ScriptedReply.hang()] * 50) as server:
        client = OpenAICompatibleClient(
            server.base_url,
            server.model,
            timeout=0.4,
            turn_timeout=1.0,
            retry=RetryPolicy(attempts=50, base_delay_s=0.001, max_delay_s=0.01),
        )
        started = time.monotonic()
        with pytest.raises(ModelError) as caught:
            await client.complete(USER, [], SamplingSettings())
        elapsed = time.monotonic() - started
        await client.aclose()
    assert caught.value.kind == "timeout" and not caught.value.retryable
    assert "within the turn's 1 s" in str(caught.value)
    assert 1.0 <= elapsed < 2.5
    assert caught.value.attempts == 3  # 0.4 + 0.4 + the 0.2 left


async def test_keepalive_comments_do_not_keep_a_silent_stream_open() -> None:
    with ScriptedServer([ScriptedReply.keepalives(every_s=0.05)]) as server:
        client = OpenAICompatibleClient(
            server.base_url,
            server.model,
            stream=True,
            timeout=5,
            idle_timeout=0.5,
            retry=ONE_TRY,
        )
        started = time.monotonic()
        with pytest.raises(ModelError) as caught:
            async with asyncio.timeout(10):  # the old client waited forever here
                await client.complete(USER, [], SamplingSettings())
        elapsed = time.monotonic() - started
        await client.aclose()
    assert caught.value.kind == "timeout"
    assert "0.5 s of silence" in str(caught.value)
    assert elapsed < 3


async def test_a_silent_server_ends_the_run_with_model_error(tmp_path: Path) -> None:
    sink = HashChainSink(tmp_path / "audit.jsonl")
    with ScriptedServer([ScriptedReply.hang()]) as server:
        client = OpenAICompatibleClient(server.base_url, server.model, timeout=0.3, retry=ONE_TRY)
        result = await Agent(client, [transfer], audit=sink, policy=allow_all()).run("pay x")
        await client.aclose()
    sink.close()
    assert result.status is RunStatus.MODEL_ERROR
    assert result.error is not None and result.error.startswith("timeout: ")
    [finished] = finished_records(tmp_path / "audit.jsonl")
    assert finished[Field.STATUS] == "model_error"


def test_run_model_timeout_flag_bounds_a_hanging_server(tmp_path: Path) -> None:
    tools = tmp_path / "pay_tools.py"
    tools.write_text(
        "from runtime import tool\n\n@tool\ndef ping() -> str:\n    '''Ping.'''\n"
        "    return 'pong'\n"
    )
    with ScriptedServer([ScriptedReply.hang()] * 8) as server:
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "runtime", "run", "--module", str(tools),
             "--base-url", server.base_url, "--model", server.model, "--model-timeout", "0.5",
             "--policy", "none", "--sandbox", "inprocess", "--audit-log", "none", "--json", "ping"],
            capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
        )  # fmt: skip
        elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    payload = json.loads(result.stdout)
    assert payload["status"] == "model_error"
    assert "did not answer within 0.5 s" in payload["error"]
    assert elapsed < 30
    refused = subprocess.run(
        [sys.executable, "-m", "runtime", "run", "--module", str(tools), "--base-url",
         "http://127.0.0.1:9/v1", "--model", "m", "--model-timeout", "0", "ping"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "positive number of seconds" in refused.stderr


class _BrokenClient:
    """A third-party client with a bug: it raises something that is no ModelError."""

    model = "broken"

    async def complete(self, *args: Any) -> Any:
        raise AttributeError("'NoneType' object has no attribute 'choices'")

    async def aclose(self) -> None:
        return None


async def test_a_client_that_raises_anything_ends_the_run_with_model_error(
    tmp_path: Path,
) -> None:
    sink = HashChainSink(tmp_path / "audit.jsonl")
    result = await Agent(_BrokenClient(), [transfer], audit=sink, policy=allow_all()).run("pay x")
    sink.close()
    assert result.status is RunStatus.MODEL_ERROR
    assert result.error is not None and "AttributeError" in result.error
    [finished] = finished_records(tmp_path / "audit.jsonl")
    assert finished[Field.STATUS] == "model_error"
