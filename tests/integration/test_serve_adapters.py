"""`agentrt serve --model NAME` with deployed adapters: each run sends what serves NAME then.

A real `agentrt serve` process talks to the scripted vLLM server and its LoRA
endpoints (`runtime/testing/lora.py`). Versions are recorded and loaded as
`agentrt adapter deploy` leaves them (the gate itself is the subject of
tests/integration/test_adapter_deploy.py); rollback and restore are the real
CLI commands. A promote, a rollback or a restore takes effect from the next run
(or resume) without restarting the service, and no request ever names a model
the server has not loaded.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from runtime.cli import main
from runtime.deploy.checkpoint import AdapterDir
from runtime.deploy.registry import SQLAdapterRegistry, VersionStatus, open_registry
from runtime.prompting.similar_requests import HEADER as SIMILAR_HEADER
from runtime.testing import ScriptedServer
from tests.adapter_fixtures import make_adapter
from tests.service_support import Replica, model_reply, sse_events


@pytest.fixture(params=["sqlite", "postgresql"])
def adapter_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The adapter store URL: a SQLite file not yet created, or an empty PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/adapters.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


def _deploy(
    registry: SQLAdapterRegistry,
    vllm: ScriptedServer,
    folder: Path,
    *,
    expected: int | None,
    similar_requests: int = 0,
) -> str:
    """Record, load and promote a version as `agentrt adapter deploy` leaves a promoted one."""
    files = AdapterDir.read(folder)
    version = registry.reserve(
        "tools", path=str(folder), server_path=str(folder), base_url=vllm.base_url,
        base_model=vllm.model, digest=files.digest, files=files.files,
        similar_requests=similar_requests,
    )  # fmt: skip
    loaded = httpx.post(
        f"{vllm.base_url}/load_lora_adapter",
        json={"lora_name": version.served_name, "lora_path": str(folder)},
    )
    loaded.raise_for_status()
    registry.update("tools", version.version, status=VersionStatus.EVALUATING, loaded=True)
    registry.promote("tools", version.version, expected=expected)
    return version.served_name


def _asked(vllm: ScriptedServer, since: int) -> set[str]:
    """The model names of the chat requests since request number `since`."""
    return {str(body["model"]) for body in vllm.requests[since:]}


def _worked_requests_shown(vllm: ScriptedServer, since: int) -> set[bool]:
    """Whether each chat request since `since` carried worked requests before the user's."""
    return {
        any(str(m.get("content", "")).startswith(SIMILAR_HEADER) for m in body["messages"])
        for body in vllm.requests[since:]
    }


def _run(client: httpx.Client, text: str) -> httpx.Response:
    return client.post("/v1/runs", json={"input": text})


def test_each_run_and_resume_sends_the_version_serving_then(
    tmp_path: Path, adapter_store: str
) -> None:
    (tmp_path / "a").mkdir()
    first = make_adapter(tmp_path / "adapter1", seed="1")
    second = make_adapter(tmp_path / "adapter2", seed="2")
    with ScriptedServer(handler=model_reply, model="smol", enable_lora=True) as vllm:
        assert vllm.adapters is not None
        # On PostgreSQL the adapter tables share the database of the service's state.
        state = adapter_store if adapter_store.startswith("postgresql") else None
        replica = Replica(
            tmp_path, "a", store=state or f"sqlite:///{tmp_path}/state.db", model=vllm,
            ledger=tmp_path / "ledger", model_name="tools",
            extra=("--adapter-store", adapter_store, "--resume-interval", "0.2"),
        ).start()  # fmt: skip
        try:
            with replica.client() as client, open_registry(adapter_store) as registry:
                # Deployed after the service started (the SQLite store did not exist yet).
                assert _deploy(registry, vllm, first, expected=None) == "tools@v1"
                before = len(vllm.requests)
                reply = _run(client, "lookup A-1")
                assert reply.status_code == 200 and reply.json()["status"] == "completed"
                assert _asked(vllm, before) == {"tools@v1"}
                assert _worked_requests_shown(vllm, before) == {False}

                # v2 learned with 2 worked requests per request: its runs show them.
                deployed = _deploy(registry, vllm, second, expected=1, similar_requests=2)
                assert deployed == "tools@v2"
                before = len(vllm.requests)
                assert _run(client, "lookup A-2").json()["status"] == "completed"
                assert _asked(vllm, before) == {"tools@v2"}
                assert _worked_requests_shown(vllm, before) == {True}

                # Paused under v2; rolled back meanwhile: the resume sends v1.
                paused = _run(client, "refund B-1 500").json()
                assert paused["status"] == "pending_approval"
                rollback = ["adapter", "rollback", "tools", "--store", adapter_store]
                assert main(rollback) == 0
                assert set(vllm.adapters.loaded) == {"tools@v1"}
                before = len(vllm.requests)
                approval = paused["approval_ids"][0]
                assert client.post(f"/v1/approvals/{approval}/approve", json={}).is_success
                finished = [
                    event["status"]
                    for name, event in sse_events(client, f"/v1/runs/{paused['run_id']}/events")
                    if name == "run.finished"
                ]
                assert finished == ["pending_approval", "completed"]
                assert _asked(vllm, before) == {"tools@v1"}

                # The server loses v1 (a restart): runs are refused, nothing is sent.
                paused = _run(client, "refund C-1 500").json()
                assert paused["status"] == "pending_approval"
                httpx.post(
                    f"{vllm.base_url}/unload_lora_adapter", json={"lora_name": "tools@v1"}
                ).raise_for_status()
                before = len(vllm.requests)
                refused = _run(client, "lookup A-3")
                assert refused.status_code == 503
                error = refused.json()["error"]
                assert error["type"] == "adapter_not_loaded"
                assert "tools is served by tools@v1" in error["message"]
                assert "agentrt adapter restore tools" in error["message"]
                approval = paused["approval_ids"][0]
                decided = client.post(f"/v1/approvals/{approval}/approve", json={}).json()
                assert decided["approval"]["status"] == "approved"
                assert decided["run"]["status"] == "pending_approval"  # stays paused, says why
                assert decided["run"]["resume_error"]["type"] == "adapter_not_loaded"
                assert len(vllm.requests) == before

                # Restored: the resume sweep picks the paused run up, and runs work again.
                assert main(["adapter", "restore", "tools", "--store", adapter_store]) == 0
                finished = [
                    event["status"]
                    for name, event in sse_events(client, f"/v1/runs/{paused['run_id']}/events")
                    if name == "run.finished"
                ]
                assert finished == ["pending_approval", "completed"]
                assert _run(client, "lookup A-4").json()["status"] == "completed"
                assert _asked(vllm, before) == {"tools@v1"}
        finally:
            replica.stop()
    assert vllm.adapters.unknown_model_requests == []


def test_worked_requests_for_a_model_the_store_does_not_know(tmp_path: Path) -> None:
    """`--similar-requests K` for a server the adapter store does not track (vLLM started
    with `--lora-modules`): each run shows K worked requests, as the adapter learned."""
    (tmp_path / "a").mkdir()
    with ScriptedServer(handler=model_reply, model="smol") as vllm:
        replica = Replica(
            tmp_path, "a", store=f"sqlite:///{tmp_path}/state.db", model=vllm,
            ledger=tmp_path / "ledger", extra=("--similar-requests", "2"),
        ).start()  # fmt: skip
        try:
            with replica.client() as client:
                before = len(vllm.requests)
                assert _run(client, "lookup A-1").json()["status"] == "completed"
                assert _asked(vllm, before) == {"smol"}
                assert _worked_requests_shown(vllm, before) == {True}
        finally:
            replica.stop()
