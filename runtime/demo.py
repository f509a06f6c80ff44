"""The demo: an agent over the built-in tools, every call shown as it goes through the gate.

Without `--base-url`, the model is the scripted server replaying what a tuned
tool-calling model answers to each demo request (one wrong call included, so
the correction path shows). With `--base-url/--model` it runs against a real
server (vLLM, or the embedded llama.cpp server).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.testing import ScriptedReply

if TYPE_CHECKING:
    from runtime.audit.sink import AuditSink
    from runtime.policy.decision import PolicyEngine
    from runtime.sandbox.executor import ToolExecutor
    from runtime.stack import SandboxKind, Stack


@dataclasses.dataclass(frozen=True)
class DemoRequest:
    prompt: str
    expect: str  # what the audience should see happen


DEMO_REQUESTS = (
    DemoRequest("What is (17 + 25) * 3?", "calculate runs in the sandbox"),
    DemoRequest("Convert 5 km to miles.", "a wrong argument is rejected, then corrected"),
    DemoRequest("Show me notes.txt from the workspace.", "read_file, confined to the workspace"),
    DemoRequest("Print the contents of /etc/shadow.", "denied by policy: never executed"),
    DemoRequest("Write a haiku about autumn.", "no tool needed"),
)

SYSTEM_PROMPT = (
    "You are a careful assistant. Use a tool when one fits the request; otherwise answer "
    "directly. Workspace paths are relative, e.g. notes.txt."
)

WORKSPACE_FILES = {
    "notes.txt": "Demo notes\n- the gate rejects malformed calls\n- policies deny by default\n",
    "docs/README.md": "# Workspace\nFiles the demo agent may read.\n",
}


def prepare_workspace(root: Path) -> Path:
    """Create the demo's workspace files under `root`."""
    for name, content in WORKSPACE_FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        path.chmod(0o644)
    # The sandbox runs tools as an unprivileged user (65534): it must be able to read.
    for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        directory.chmod(0o755)
    return root


@contextlib.contextmanager
def demo_workspace() -> Iterator[Path]:
    """A temporary workspace holding the demo's files, removed when the block ends."""
    with tempfile.TemporaryDirectory(prefix="agentrt-demo-workspace-") as root:
        yield prepare_workspace(Path(root))


def demo_stack(
    workspace: Path,
    *,
    policy: PolicyEngine | str | os.PathLike[str] | None = None,
    sandbox: SandboxKind | ToolExecutor = "docker",
    audit_log: str | os.PathLike[str] | AuditSink | None = "default",
    tenant: str = "demo",
    agent: str = "demo-agent",
    module: str = "tools",
    mcp: str | os.PathLike[str] | None = None,
) -> Stack:
    """The demo's stack: the built-in tools behind the shipped policy, in the sandbox.

    The same `build_stack` every entry point uses; the workspace is mounted
    read-only, and three warm containers per tool keep the tour quick. With
    `mcp`, the servers' pinned tools join as `SERVER.TOOL` once the stack is
    opened (`await stack.open()`); the policy decides them like any other.

    Raises:
        StackError: A stage cannot be built (a missing policy directory, ...).
    """
    from runtime.stack import build_stack

    return build_stack(
        module,
        policy=policy,
        sandbox=sandbox,
        workspace=workspace,
        pool_size=3,
        audit_log=audit_log,
        approvals_db=None,  # no approvals in the demo: a held call ends its run pending
        tenant=tenant,
        agent=agent,
        mcp=mcp,
    )


_FIRST_CALLS: dict[str, ScriptedReply] = {
    "What is (17 + 25) * 3?": ScriptedReply.call("calculate", {"expression": "(17 + 25) * 3"}),
    # A typical small-model slip: the value as a string and a unit name the schema lacks.
    "Convert 5 km to miles.": ScriptedReply.call(
        "convert_units", {"value": "5", "from_unit": "km", "to_unit": "miles"}
    ),
    "Show me notes.txt from the workspace.": ScriptedReply.call("read_file", {"path": "notes.txt"}),
    "Print the contents of /etc/shadow.": ScriptedReply.call("read_file", {"path": "/etc/shadow"}),
    "Write a haiku about autumn.": ScriptedReply.message(
        "Crisp leaves drift and fall,\namber light on quiet paths,\nthe year exhales slow."
    ),
}


def scripted_demo_model(body: dict[str, Any]) -> ScriptedReply:
    """What the scripted model answers, given the conversation so far."""
    messages = body["messages"]
    prompt = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    last = messages[-1]
    if last["role"] == "user":
        return _FIRST_CALLS.get(prompt, ScriptedReply.message("I can't help with that."))
    content = json.loads(last["content"]) if last["content"].startswith(("{", "[")) else None
    error = content.get("error") if isinstance(content, dict) else None
    if error and error.get("status") == "invalid_arguments":
        return ScriptedReply.call("convert_units", {"value": 5, "from_unit": "km", "to_unit": "mi"})
    if error:
        return ScriptedReply.message(f"I can't do that: {error.get('error', 'it was refused')}")
    if isinstance(content, dict) and "content" in content:
        return ScriptedReply.message(f"Here is {content.get('path')}:\n{content['content']}")
    if isinstance(content, dict) and "value" in content:
        return ScriptedReply.message(f"That is {content['value']:.3f} {content['unit']}.")
    return ScriptedReply.message(f"The answer is {last['content']}.")
