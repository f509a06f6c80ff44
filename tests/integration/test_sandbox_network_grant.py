"""Network in the sandbox: only when the tool asks AND the policy decision grants it."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import pytest
import pytest_asyncio

from runtime import CallStatus, ToolCallRequest, ToolRegistry
from runtime.calls import CallContext
from runtime.module_loader import load_module
from runtime.pipeline import ToolCallPipeline
from runtime.policy.loader import load_policies
from runtime.policy.ratelimit import InMemoryRateLimitStore
from runtime.sandbox.docker_executor import DockerExecutor, probe_docker
from tests.conftest import docker_unavailable

pytestmark = [
    pytest.mark.docker,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.usefixtures("no_sandbox_container_survives"),
]

TOOLS = textwrap.dedent(
    '''
    import os
    from runtime import tool

    @tool(sandbox={"network": True})
    def interfaces_wanting_network() -> list[str]:
        """Network interfaces this container has."""
        return sorted(os.listdir("/sys/class/net"))

    @tool
    def interfaces_plain() -> list[str]:
        """Network interfaces, without asking for network."""
        return sorted(os.listdir("/sys/class/net"))
    '''
)

POLICY = textwrap.dedent(
    """
    apiVersion: agentrt/v1
    kind: ToolPolicy
    metadata: {id: net}
    rules:
      - id: allow-with-network
        effect: allow
        tools: ["interfaces_wanting_network", "interfaces_plain"]
        when: {context.tenant: {equals: trusted}}
        grants: [network]
      - id: allow-without-network
        effect: allow
        tools: ["interfaces_wanting_network", "interfaces_plain"]
        when: {context.tenant: {equals: other}}
    """
)


@pytest.fixture(scope="module")
def tools_module(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    problem = probe_docker()
    if problem is not None:
        docker_unavailable(RuntimeError(problem.message))
    root = tmp_path_factory.mktemp("nettools")
    path = root / "net_grant_tools.py"
    path.write_text(TOOLS)
    path.chmod(0o644)
    return load_module(str(path))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pipeline(
    tools_module: ModuleType, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ToolCallPipeline]:
    policy_dir: Path = tmp_path_factory.mktemp("netpolicy")
    (policy_dir / "net.yaml").write_text(POLICY)
    policy = load_policies(policy_dir, rate_limits=InMemoryRateLimitStore())
    async with DockerExecutor(pool_size=0) as executor:
        yield ToolCallPipeline(ToolRegistry.from_module(tools_module), executor, policy=policy)


@pytest.mark.parametrize(
    ("tool", "tenant", "network"),
    [
        ("interfaces_wanting_network", "trusted", True),  # asked and granted
        ("interfaces_wanting_network", "other", False),  # asked, not granted
        ("interfaces_plain", "trusted", False),  # granted, not asked
    ],
)
async def test_network_needs_both_the_tool_and_the_policy(
    pipeline: ToolCallPipeline, tool: str, tenant: str, network: bool
) -> None:
    outcome = await pipeline.process(
        ToolCallRequest(id=f"c-{tool}-{tenant}", name=tool, arguments="{}"),
        CallContext(tenant=tenant),
    )
    assert outcome.status is CallStatus.OK, outcome.error
    assert outcome.execution is not None
    assert outcome.execution.sandbox["network"] is network
    has_interface_beyond_loopback = any(name != "lo" for name in outcome.result)
    assert has_interface_beyond_loopback is network
