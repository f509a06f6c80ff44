"""MCP pins, the servers file and the sandbox flags, without Docker or a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.mcp.config import McpConfigError, StdioServer, load_mcp_config, lock_path
from runtime.mcp.launch import LaunchError, docker_run_args, host_config_flags
from runtime.mcp.pins import Definition, Lock, LockError, check_pins
from runtime.sandbox.hardening import LABEL, LABEL_OWNER, SandboxLimits, hardened_host_config
from runtime.sandbox.reaper import owner_id

SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


def test_a_definition_digest_covers_name_description_and_schema() -> None:
    base = Definition("echo", "Echo.", SCHEMA)
    assert base.sha256 == Definition("echo", "Echo.", json.loads(json.dumps(SCHEMA))).sha256
    for other in (
        Definition("echo2", "Echo.", SCHEMA),
        Definition("echo", "Echo!", SCHEMA),
        Definition("echo", "Echo.", {**SCHEMA, "required": []}),
    ):
        assert other.sha256 != base.sha256


def test_check_pins_names_each_kind_of_change() -> None:
    pinned = {"echo": Definition("echo", "Echo.", SCHEMA), "gone": Definition("gone", "", SCHEMA)}
    schema = {**SCHEMA, "properties": {**SCHEMA["properties"], "upper": {"type": "boolean"}}}
    live = {
        "echo": Definition("echo", "Echo louder.", schema),
        "new": Definition("new", "", SCHEMA),
    }
    checks = {c.name: c for c in check_pins("fx", live, pinned)}
    assert checks["echo"].state == "changed"
    assert "description changed; input schema changed: added upper" in checks["echo"].reason
    assert checks["new"].state == "new" and "fx.new is not pinned" in checks["new"].reason
    assert checks["gone"].state == "removed" and not checks["gone"].offered
    unchanged = check_pins("fx", {"echo": pinned["echo"]}, pinned)[0]
    assert unchanged.name == "echo" and unchanged.offered


def test_nothing_is_offered_before_pinning() -> None:
    checks = check_pins("fx", {"echo": Definition("echo", "", SCHEMA)}, None)
    assert [c.state for c in checks] == ["new"]


def test_the_lock_round_trips_and_refuses_a_hand_edit(tmp_path: Path) -> None:
    path = tmp_path / "mcp.lock"
    assert Lock.read(path).servers == {}
    Lock({"fx": {"echo": Definition("echo", "Echo.", SCHEMA)}}).write(path)
    assert (
        Lock.read(path).servers["fx"]["echo"].sha256 == Definition("echo", "Echo.", SCHEMA).sha256
    )
    data = json.loads(path.read_text())
    data["servers"]["fx"]["echo"]["description"] = "Something else."
    path.write_text(json.dumps(data))
    with pytest.raises(LockError, match="does not match its digest"):
        Lock.read(path)


def test_lock_sits_next_to_the_config() -> None:
    assert lock_path("/etc/agent/mcp.yaml") == Path("/etc/agent/mcp.lock")


def test_the_servers_file_is_strict(tmp_path: Path) -> None:
    path = tmp_path / "mcp.yaml"
    path.write_text("version: 1\nservers:\n  a.b:\n    transport: stdio\n    command: x\n")
    with pytest.raises(McpConfigError, match="no dots"):
        load_mcp_config(path)
    path.write_text(
        "version: 1\nservers:\n  t:\n    transport: stdio\n    command: x\n    command: y\n"
    )
    with pytest.raises(McpConfigError, match="duplicate key 'command'"):
        load_mcp_config(path)
    path.write_text("version: 1\nservers:\n  t:\n    transport: ftp\n    command: x\n")
    with pytest.raises(McpConfigError, match=r"mcp\.yaml"):
        load_mcp_config(path)
    with pytest.raises(McpConfigError, match="does not exist"):
        load_mcp_config(tmp_path / "missing.yaml")


def test_http_headers_come_only_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mcp.yaml"
    path.write_text(
        "version: 1\nservers:\n  docs:\n    transport: http\n    url: https://x.example/mcp\n"
        "    headers_from_env: {Authorization: DOCS_TOKEN}\n"
    )
    server = load_mcp_config(path).servers["docs"]
    monkeypatch.delenv("DOCS_TOKEN", raising=False)
    with pytest.raises(McpConfigError, match="DOCS_TOKEN"):
        server.headers()  # type: ignore[union-attr]
    monkeypatch.setenv("DOCS_TOKEN", "Bearer t0ken")
    assert server.headers() == {"Authorization": "Bearer t0ken"}  # type: ignore[union-attr]


def test_docker_run_carries_every_hardening_setting_and_the_reaper_labels() -> None:
    server = StdioServer(transport="stdio", command="mcp-server-time", args=("--x", "1"))
    args = docker_run_args("time", server, name="agentrt-mcp-time-1", network=False, mounts=())
    joined = " ".join(args)
    for flag in (
        "--network none",
        "--read-only",
        "--cap-drop ALL",
        "--security-opt no-new-privileges",
        "--user 65534:65534",
        "--ipc none",
        "--init",
        "--pids-limit 64",
        "--ulimit core=0:0",
        f"--label {LABEL}=1",
        f"--label {LABEL_OWNER}={owner_id()}",
    ):
        assert flag in joined, flag
    assert args[-3:] == ["mcp-server-time", "--x", "1"]
    granted = docker_run_args("time", server, name="n", network=True, mounts=())
    assert "--network bridge" in " ".join(granted)


def test_every_hardening_key_has_a_flag() -> None:
    # a setting added to the sandbox's HostConfig must be translated, not dropped
    assert host_config_flags(hardened_host_config(SandboxLimits(), network=False))
    with pytest.raises(LaunchError, match="has no docker run flag"):
        host_config_flags({"DeviceRequests": []})
    with pytest.raises(LaunchError, match="privileged"):
        host_config_flags({"Privileged": True})
