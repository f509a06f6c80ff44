"""`agentrt serve-model` keeps its server while it is busy answering (issue 13, case 8).

It used to probe `/v1/models` every second with a 2 s timeout; the llama.cpp
server answers that only between completions, so the first completion longer
than ~2 s got its server killed mid-request and every later request failed.
"""

from __future__ import annotations

import asyncio
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.model import ModelTurn, OpenAICompatibleClient, RetryPolicy, SamplingSettings
from runtime.model.local_server import free_port

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parents[2]
# A long prompt as well as a long answer: the bare model sometimes ends its story early, and
# reading ~700 tokens first keeps the request long either way.
BACKGROUND = "The dragon lived in a cave above a quiet village by the sea. " * 50
RAMBLE = [
    {
        "role": "user",
        "content": f"{BACKGROUND}\nWrite a very long story about this dragon, in ten chapters.",
    }
]
MAX_TOKENS = 3000  # the prompt and the answer must fit the server's 4096-token context
LONG_S = 8.0  # comfortably past the 5 s the issue asks for, and past one probe interval


async def _long_then_short(port: int) -> tuple[float, int, ModelTurn, ModelTurn]:
    client = OpenAICompatibleClient(
        f"http://127.0.0.1:{port}/v1", "smollm2-135m", timeout=600, retry=RetryPolicy(1)
    )
    try:
        # Grow the request until it takes LONG_S on this machine (speeds vary a lot).
        tokens = 32
        for _ in range(5):
            started = time.monotonic()
            long = await client.complete(RAMBLE, [], SamplingSettings(max_tokens=tokens))
            took = time.monotonic() - started
            if took > LONG_S or tokens >= MAX_TOKENS:
                break
            tokens = min(MAX_TOKENS, max(2 * tokens, math.ceil(tokens * 1.5 * LONG_S / took)))
        after = await client.complete(
            [{"role": "user", "content": "Say hi."}], [], SamplingSettings(max_tokens=8)
        )
    finally:
        await client.aclose()
    return took, tokens, long, after


def test_a_long_request_and_the_next_one_both_succeed(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "runtime", "serve-model", "--base", "--port", str(port)]
    serve = subprocess.Popen(
        [*command, "--log", str(tmp_path / "server.log")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert serve.stdout is not None
        banner = serve.stdout.readline()  # printed once the server answers
        assert banner.startswith("serving "), banner + serve.stdout.read()
        took, tokens, long, after = asyncio.run(_long_then_short(port))
        assert took > 5, f"the long request took only {took:.1f} s ({tokens} tokens)"
        # the story may end on its own before the cap; what matters is that it took > 5 s
        assert long.finish_reason in ("length", "stop") and long.usage.completion_tokens > 0
        assert after.usage.completion_tokens > 0
        assert serve.poll() is None
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            rest, _ = serve.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()
            rest, _ = serve.communicate()
    assert "stopped answering" not in rest and "did not answer" not in rest
    assert rest.strip().endswith("stopped")
    assert serve.returncode == 0
