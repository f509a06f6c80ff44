"""Shared fixtures: the scripted model server and capture loading."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.testing import ScriptedServer

FIXTURES = Path(__file__).parent / "fixtures"


def load_captures(name: str) -> list[dict[str, Any]]:
    """Real vLLM request/response pairs recorded on a GPU host (see fixtures/)."""
    with (FIXTURES / "vllm_captures.jsonl").open() as handle:
        rows = [json.loads(line) for line in handle]
    found = [row for row in rows if row["name"] == name]
    assert found, f"no capture named {name}"
    return found


@pytest.fixture
def scripted_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer().start()
    try:
        yield server
    finally:
        server.stop()
