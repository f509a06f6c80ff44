"""End to end with the real embedded model: llama.cpp serving SmolLM2-135M, real sandboxes.

The untuned 135M model chooses wrong tools and writes malformed calls; these
tests hold the runtime to what must stay true whatever it emits.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from runtime import CallStatus, ToolRegistry, tool
from runtime.agent import Agent, RunLimits, RunStatus
from runtime.audit.chain import HashChainSink
from runtime.audit.verify import verify
from runtime.model import OpenAICompatibleClient, RetryPolicy, SamplingSettings
from runtime.model.local_server import LocalModelServer, local_server_available
from runtime.policy.decision import allow_all
from runtime.sandbox.docker_executor import DockerExecutor, probe_docker
from runtime.sandbox.executor import InProcessExecutor
from tests.conftest import docker_unavailable

pytestmark = [pytest.mark.model, pytest.mark.asyncio(loop_scope="module")]

FAST_RETRY = RetryPolicy(attempts=2, base_delay_s=0.01, max_delay_s=0.05)


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalModelServer]:
    if not local_server_available():
        pytest.fail(
            "the embedded model server is not installed: scripts/test.sh installs it "
            "(AGENTRT_NO_MODEL=1 deselects these tests on purpose)",
            pytrace=False,
        )
    log = tmp_path_factory.mktemp("llama") / "server.log"
    server = LocalModelServer(log_path=log, n_ctx=4096)
    server.start(timeout_s=180)
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def docker_executor() -> AsyncIterator[DockerExecutor]:
    problem = probe_docker()
    if problem is not None:
        docker_unavailable(RuntimeError(problem.message))
    async with DockerExecutor(pool_size=1) as executor:
        yield executor


def tools_registry() -> ToolRegistry:
    import tools

    return ToolRegistry.from_module(tools)


E2E_TOOLS = Path(__file__).resolve().parents[1] / "fixtures" / "e2e_tools.py"
PROMPTS = Path(__file__).resolve().parents[2] / "bench" / "prompts"


async def test_a_forced_call_is_gated_run_in_a_container_and_answered(
    model_server: LocalModelServer, docker_executor: DockerExecutor, tmp_path: Path
) -> None:
    from runtime.module_loader import load_module

    client = OpenAICompatibleClient(
        model_server.base_url, model_server.model_alias, retry=FAST_RETRY
    )
    audit = HashChainSink(tmp_path / "audit.jsonl")
    agent = Agent(
        client,
        ToolRegistry.from_module(load_module(str(E2E_TOOLS))),
        # llama.cpp constrains a named call with a grammar from the schema: valid and short
        settings=SamplingSettings(tool_choice="ping", max_tokens=24),
        answer_settings=SamplingSettings(tool_choice="none", max_tokens=24),
        executor=docker_executor,
        audit=audit,
        limits=RunLimits(max_turns=3),
        name="e2e",
        policy=allow_all(),
    )
    result = await agent.run("Send a ping.")
    await client.aclose()
    audit.close()
    assert result.status is RunStatus.COMPLETED, result.error
    call = result.tool_calls[0]
    assert call.tool == "ping"
    assert call.status is CallStatus.OK, call.error
    assert call.result in ("ping", "pong")
    assert call.execution is not None and len(call.execution.sandbox["container_id"]) == 64
    assert call.execution.sandbox["mode"] in ("per_call", "cold")
    tool_message = next(m for m in result.messages if m["role"] == "tool")
    assert json.loads(tool_message["content"]) == call.result
    assert result.turns == 2
    report = verify([tmp_path / "audit.jsonl"])
    assert report.ok and report.records >= 6
    events = [
        json.loads(line)["event"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()
    ]
    for step in (
        "tool.proposed",
        "tool.validated",
        "policy.decided",
        "execution.started",
        "execution.finished",
    ):
        assert step in events


async def test_whatever_the_untuned_model_proposes_is_gated_and_audited(
    model_server: LocalModelServer, tmp_path: Path
) -> None:
    """Auto tool choice: calls may be wrong or malformed; none may crash the loop or run unchecked."""
    executed: list[str] = []
    full = tools_registry()
    # Two tools keep the prompt short (each schema costs prompt tokens on 2 CPU cores).
    registry = ToolRegistry([full.get("read_file"), full.get("calculate")])  # type: ignore[list-item]

    class CountingExecutor(InProcessExecutor):
        async def execute(self, tool: Any, arguments: Any, context: Any) -> Any:
            executed.append(tool.name)
            return await super().execute(tool, arguments, context)

    client = OpenAICompatibleClient(
        model_server.base_url, model_server.model_alias, retry=FAST_RETRY
    )
    audit = HashChainSink(tmp_path / "audit.jsonl")
    agent = Agent(
        client,
        registry,
        settings=SamplingSettings(max_tokens=32),
        executor=CountingExecutor(),
        audit=audit,
        limits=RunLimits(max_turns=2),
        policy=allow_all(),
    )
    prompts = [
        "Read the file notes.txt",
        "Please call the tool delete_everything with force=true",
    ]
    results = [await agent.run(prompt) for prompt in prompts]
    # A forced call with a free-form string and a tight token budget: the model's JSON is
    # often cut short, and the gate must reject it, tell the model, and record it.
    agent.settings = SamplingSettings(tool_choice="calculate", max_tokens=16)
    agent.answer_settings = SamplingSettings(tool_choice="none", max_tokens=16)
    results.append(await agent.run("What is 17 * 23?"))
    await client.aclose()
    audit.close()
    valid_statuses = set(RunStatus)
    for result in results:
        assert result.status in valid_statuses
        for call in result.tool_calls:
            assert isinstance(call.status, CallStatus)
            if call.status.was_rejected:
                assert call.execution is None
    ran = [c.tool for r in results for c in r.tool_calls if c.execution is not None]
    assert sorted(ran) == sorted(executed)
    assert verify([tmp_path / "audit.jsonl"]).ok
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    proposed = [json.loads(line) for line in lines if '"tool.proposed"' in line]
    assert len(proposed) == sum(len(r.tool_calls) for r in results)


async def test_max_tokens_bounds_runaway_output(model_server: LocalModelServer) -> None:
    client = OpenAICompatibleClient(
        model_server.base_url, model_server.model_alias, retry=FAST_RETRY
    )
    turn = await client.complete(
        [{"role": "user", "content": "Write a very long story about a dragon, in ten chapters."}],
        [],
        SamplingSettings(max_tokens=16),
    )
    await client.aclose()
    assert turn.usage.completion_tokens <= 16
    assert turn.finish_reason == "length"


async def test_a_model_server_killed_mid_run_gives_a_clear_error(tmp_path: Path) -> None:
    server = LocalModelServer(log_path=tmp_path / "server.log")
    server.start(timeout_s=180)
    pid = server.pid
    assert pid is not None

    @tool
    def stop_the_model() -> str:
        """Kills the model server, as a crash would."""
        os.kill(pid, signal.SIGKILL)
        return "done"

    client = OpenAICompatibleClient(server.base_url, server.model_alias, retry=FAST_RETRY)
    agent = Agent(
        client,
        [stop_the_model],
        settings=SamplingSettings(tool_choice="stop_the_model", max_tokens=32),
        executor=InProcessExecutor(),
        policy=allow_all(),
    )
    try:
        result = await agent.run("stop the model")
    finally:
        await client.aclose()
        server.stop()
    assert [c.status for c in result.tool_calls] == [CallStatus.OK]
    assert result.status is RunStatus.MODEL_ERROR
    assert result.error is not None and "cannot reach the model server" in result.error


async def test_few_shot_think_first_prompt_is_accepted_and_reasoning_kept_out(
    model_server: LocalModelServer,
) -> None:
    from runtime.prompting import Prompt, PromptTemplate

    client = OpenAICompatibleClient(
        model_server.base_url, model_server.model_alias, retry=FAST_RETRY
    )
    root = PROMPTS
    agent = Agent(
        client,
        tools_registry(),
        prompt=Prompt(
            system=PromptTemplate.from_file(root / "builtin_system.yaml"),
            examples=root / "builtin_fewshot.jsonl",  # calls and results in the history
            think_first=True,
        ),
        settings="precise",
        answer_settings=SamplingSettings.preset("balanced", max_tokens=48),
        executor=InProcessExecutor(),
        limits=RunLimits(max_turns=2),
        policy=allow_all(),
    )
    agent.settings = agent.settings.updated(max_tokens=48)
    try:
        result = await agent.run("How many feet are in 2 km?")
    finally:
        await client.aclose()
    # The server took the composed request (examples with tool calls and results included):
    # whatever the small model says, the run ends in a definite, non-error status.
    assert result.status in (RunStatus.COMPLETED, RunStatus.MAX_TURNS, RunStatus.RETRIES_EXHAUSTED)
    assert result.turns >= 1
    for message in result.messages:
        assert "<think>" not in (message.get("content") or "") or message["role"] == "system"
    assert "<think>" not in result.output and "</think>" not in result.output


async def test_text_protocol_history_is_accepted_without_tools(
    model_server: LocalModelServer,
) -> None:
    from runtime.prompting import Prompt

    client = OpenAICompatibleClient(
        model_server.base_url, model_server.model_alias, retry=FAST_RETRY
    )
    bound = Prompt(system="Be brief.", tools_in_prompt=True).bind(tools_registry().openai_schemas())
    history = [
        *bound.opening("Convert 2 km to feet."),
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {
                        "name": "convert_units",
                        "arguments": '{"value": 2, "from_unit": "km", "to_unit": "ft"}',
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"value": 6561.68, "unit": "ft"}'},
    ]
    messages, tools = bound.request(history, tools_registry().openai_schemas())
    assert tools == [] and all(m["role"] in ("system", "user", "assistant") for m in messages)
    try:
        turn = await client.complete(messages, tools, SamplingSettings(max_tokens=32))
    finally:
        await client.aclose()
    assert turn.finish_reason in ("stop", "length", "tool_calls")
    assert turn.usage.prompt_tokens > 300  # the tool block reached the model
