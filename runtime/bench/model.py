"""`agentrt bench model`: turn latency and tokens/s of the embedded model, and the runtime's share.

Each request runs twice in one process: once against the real llama.cpp server
(the turn's wall time, tokens/s), then the very same reply is replayed by the
scripted server on loopback, so the second timing is the runtime's own work
on that reply (building and repairing the request, HTTP on loopback, parsing,
recovering `<tool_call>` text, and the gate for any proposed call) with the
model's time taken out. The share is that over the real turn: an upper bound,
since it still includes a loopback HTTP exchange.
"""

from __future__ import annotations

import time
from typing import Any

from runtime.arguments import ArgumentGate
from runtime.model import compat
from runtime.model.client import ModelTurn, OpenAICompatibleClient
from runtime.model.settings import SamplingSettings
from runtime.stats import percentile
from runtime.tools import ToolRegistry

PROMPTS = (
    "What is 17 * 23?",
    "Convert 5 km to miles.",
    "Read the file notes.txt",
    "Write a haiku about autumn.",
    "List the files in the workspace.",
)


async def _timed_turn(
    client: OpenAICompatibleClient,
    gate: ArgumentGate,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    settings: SamplingSettings,
) -> tuple[ModelTurn, float]:
    started = time.perf_counter()
    turn = await client.complete(messages, tools, settings)
    for call in turn.tool_calls:
        gate.check(call)
    return turn, time.perf_counter() - started


def _replay_body(turn: ModelTurn) -> dict[str, Any]:
    """The reply as a server would send it, to replay byte-for-byte in shape."""
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in turn.tool_calls
        if not turn.calls_from_text
    ]
    content = turn.text
    if turn.calls_from_text:
        blocks = "".join(
            f'<tool_call>{{"name": "{c.name}", "arguments": {c.arguments or "{}"}}}</tool_call>'
            for c in turn.tool_calls
        )
        content = f"{content}{blocks}"
    return {
        "id": "chatcmpl-replay",
        "object": "chat.completion",
        "created": 0,
        "model": turn.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content or None, "tool_calls": calls},
                "finish_reason": turn.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": turn.usage.prompt_tokens,
            "completion_tokens": turn.usage.completion_tokens,
            "total_tokens": turn.usage.total_tokens,
        },
    }


async def bench_model(
    registry: ToolRegistry,
    *,
    rounds: int = 2,
    max_tokens: int = 64,
    adapter: str | None = None,
    replays: int = 20,
) -> dict[str, Any]:
    """Measure the embedded server and the runtime's share of each turn."""
    from pathlib import Path

    from runtime.model.local_server import LocalModelServer
    from runtime.testing import ScriptedReply, ScriptedServer

    gate = ArgumentGate(registry)
    tools = compat.model_facing_tools(registry.openai_schemas())
    settings = SamplingSettings(max_tokens=max_tokens)
    turns: list[dict[str, Any]] = []
    with LocalModelServer(adapter=Path(adapter) if adapter else None) as server:
        client = OpenAICompatibleClient(server.base_url, server.model_alias)
        # The first request pays for loading the prompt cache; not a steady-state turn.
        await client.complete([{"role": "user", "content": "Hi"}], tools, settings)
        for _ in range(rounds):
            for prompt in PROMPTS:
                messages = [{"role": "user", "content": prompt}]
                turn, wall = await _timed_turn(client, gate, messages, tools, settings)
                turns.append({"prompt": prompt, "turn": turn, "wall_s": wall})
        await client.aclose()

    for item in turns:
        reply = ScriptedReply.captured(body=_replay_body(item["turn"]))
        with ScriptedServer([reply] * (replays + 1)) as replay_server:
            client = OpenAICompatibleClient(replay_server.base_url, replay_server.model)
            messages = [{"role": "user", "content": item["prompt"]}]
            await _timed_turn(client, gate, messages, tools, settings)  # warm the connection
            costs = [
                (await _timed_turn(client, gate, messages, tools, settings))[1]
                for _ in range(replays)
            ]
            await client.aclose()
        item["runtime_s"] = percentile(costs, 0.5)

    walls = [t["wall_s"] for t in turns]
    shares = [t["runtime_s"] / t["wall_s"] for t in turns]
    completion = sum(t["turn"].usage.completion_tokens for t in turns)
    prompt_tokens = [t["turn"].usage.prompt_tokens for t in turns]
    return {
        "turns": len(turns),
        "turn_p50_s": round(percentile(walls, 0.5), 3),
        "turn_p95_s": round(percentile(walls, 0.95), 3),
        "tokens_per_s": round(completion / sum(walls), 1),
        "completion_tokens": completion,
        "prompt_tokens_p50": percentile([float(p) for p in prompt_tokens], 0.5),
        "runtime_share_p50_pct": round(100 * percentile(shares, 0.5), 3),
        "runtime_share_max_pct": round(100 * max(shares), 3),
        "runtime_ms_p50": round(1000 * percentile([t["runtime_s"] for t in turns], 0.5), 3),
        "calls_proposed": sum(len(t["turn"].tool_calls) for t in turns),
        "adapter": adapter,
        "max_tokens": max_tokens,
    }
