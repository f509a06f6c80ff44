"""`agentrt serve` as a real process (uvicorn) on the embedded SQLite store: the HTTP contract.

One replica serves the whole module (its start-up costs seconds); each test
uses its own runs, so they do not depend on one another. The scripted model
and the ledger of executed refunds are described in tests/service_support.py.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service_support import (
    ACME,
    EXPIRED,
    GLOBEX,
    Replica,
    ledger_lines,
    replicas,
    sse_events,
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service")


@pytest.fixture(scope="module")
def replica(workdir: Path) -> Iterator[Replica]:
    with replicas(workdir, f"sqlite:///{workdir}/state.db", ("a",), workdir / "ledger") as found:
        yield found[0]


@pytest.fixture
def acme(replica: Replica) -> Iterator[httpx.Client]:
    with replica.client(ACME) as client:
        yield client


@pytest.fixture
def globex(replica: Replica) -> Iterator[httpx.Client]:
    with replica.client(GLOBEX) as client:
        yield client


def _refunds(replica: Replica, order: str) -> list[str]:
    return [line for line in ledger_lines(replica.ledger) if f" {order} " in line]


def _paused(client: httpx.Client, order: str, amount: int = 500) -> dict[str, Any]:
    reply = client.post("/v1/runs", json={"input": f"refund {order} {amount} 4111111111111111"})
    assert reply.status_code == 200, reply.text
    run = reply.json()
    assert run["status"] == "pending_approval" and len(run["approval_ids"]) == 1
    return run


def _error(reply: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = reply.json()["error"]
    assert error["message"]
    return error


# ---------------------------------------------------------------- authentication


def test_health_needs_no_token_and_everything_else_does(replica: Replica) -> None:
    with replica.client(None) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        for method, path in (
            ("GET", "/v1/approvals"),
            ("POST", "/v1/runs"),
            ("GET", "/v1/runs/x"),
            ("GET", "/metrics"),
            ("GET", "/v1/audit"),
        ):
            reply = anonymous.request(method, path)
            assert reply.status_code == 401, (path, reply.text)
            assert reply.headers["www-authenticate"] == "Bearer"
            assert _error(reply)["type"] == "unauthorized"
    for token in ("wrong-token-123456", EXPIRED):
        with replica.client(token) as client:
            reply = client.get("/v1/approvals")
            assert reply.status_code == 401
            assert _error(reply)["message"] == "invalid or expired token"
    with replica.client(None, headers={"Authorization": f"Basic {ACME}"}) as basic:
        assert basic.get("/v1/approvals").status_code == 401
    assert ACME not in replica.log.read_text() and EXPIRED not in replica.log.read_text()


# ---------------------------------------------------------------- runs


def test_a_run_answers_as_agentrt_run_json_and_only_its_tenant_sees_it(
    acme: httpx.Client, globex: httpx.Client
) -> None:
    reply = acme.post("/v1/runs", json={"input": "lookup A-1", "context": {"region": "eu"}})
    assert reply.status_code == 200
    run = reply.json()
    assert {"status", "output", "tool_calls", "usage", "turns", "run_id"} <= set(run)
    assert run["status"] == "completed" and run["output"].startswith("done: ")
    assert [c["status"] for c in run["tool_calls"]] == ["ok"]
    fetched = acme.get(f"/v1/runs/{run['run_id']}").json()
    assert fetched["status"] == "completed" and fetched["tool_calls"] == run["tool_calls"]
    assert fetched["tenant"] == "acme"
    hidden = globex.get(f"/v1/runs/{run['run_id']}")
    assert hidden.status_code == 404 and _error(hidden)["type"] == "not_found"
    assert globex.get(f"/v1/runs/{run['run_id']}/events").status_code == 404
    assert acme.get("/v1/runs/no-such-run").status_code == 404


def test_an_async_run_streams_one_event_per_call_stage(acme: httpx.Client) -> None:
    reply = acme.post("/v1/runs", json={"input": "lookup B-2", "wait": False})
    assert reply.status_code == 202
    run_id = reply.json()["run_id"]
    events = list(sse_events(acme, f"/v1/runs/{run_id}/events"))
    stages = [name for name, _ in events]
    assert stages == [
        "run.started",
        "proposed",
        "validated",
        "decided",
        "started",
        "finished",
        "run.finished",
    ]
    assert events[3][1]["decision"]["decision"] == "allow"
    assert events[5][1]["status"] == "ok" and events[-1][1]["status"] == "completed"
    assert acme.get(f"/v1/runs/{run_id}").json()["status"] == "completed"


# ---------------------------------------------------------------- approvals


def test_approving_resumes_the_run_once_and_twice_is_a_conflict(
    replica: Replica, acme: httpx.Client, globex: httpx.Client
) -> None:
    run = _paused(acme, "C-3")
    approval_id = run["approval_ids"][0]
    listed = acme.get("/v1/approvals").json()["approvals"]
    mine = next(a for a in listed if a["id"] == approval_id)
    assert mine["tool"] == "issue_refund" and mine["rule_ids"] == ["approve-big-refunds"]
    assert mine["arguments"]["card_number"] == {"redacted": "path"}  # as the policy says
    assert mine["reason"] == "Refunds over 100 need a human's approval."
    assert approval_id not in [a["id"] for a in globex.get("/v1/approvals").json()["approvals"]]
    assert globex.post(f"/v1/approvals/{approval_id}/approve").status_code == 404
    assert globex.get(f"/v1/approvals/{approval_id}").status_code == 404

    reply = acme.post(f"/v1/approvals/{approval_id}/approve", json={"wait": True})
    assert reply.status_code == 200, reply.text
    assert reply.json()["run"]["status"] == "completed"
    assert reply.json()["approval"]["status"] == "executed"
    assert len(_refunds(replica, "C-3")) == 1

    again = acme.post(f"/v1/approvals/{approval_id}/approve", json={"wait": True})
    assert again.status_code == 409 and _error(again)["type"] == "not_pending"
    assert len(_refunds(replica, "C-3")) == 1
    assert acme.get(f"/v1/runs/{run['run_id']}").json()["status"] == "completed"


def test_a_denied_call_cannot_be_approved_and_the_model_is_told(
    replica: Replica, acme: httpx.Client
) -> None:
    run = _paused(acme, "D-4")
    approval_id = run["approval_ids"][0]
    denied = acme.post(
        f"/v1/approvals/{approval_id}/deny", json={"reason": "not this one", "wait": True}
    )
    assert denied.status_code == 200, denied.text
    resumed = denied.json()["run"]
    assert resumed["status"] == "completed"
    assert resumed["tool_calls"][0]["status"] == "denied"
    late = acme.post(f"/v1/approvals/{approval_id}/approve")
    assert late.status_code == 409 and "rejected" in _error(late)["message"]
    assert _refunds(replica, "D-4") == []


def test_edited_arguments_are_validated_and_decided_again(
    replica: Replica, acme: httpx.Client
) -> None:
    run = _paused(acme, "E-5")
    approval_id = run["approval_ids"][0]
    path = f"/v1/approvals/{approval_id}/approve"

    bad_schema = acme.post(path, json={"arguments": {"order_id": "E-5", "amount": "lots"}})
    assert bad_schema.status_code == 422
    assert _error(bad_schema)["type"] == "invalid_arguments"
    refused = acme.post(path, json={"arguments": {"order_id": "E-5", "amount": 6000}})
    assert refused.status_code == 422
    error = _error(refused)
    assert error["type"] == "denied_by_policy"
    assert error["decision"]["rule_ids"] == ["deny-huge-refunds"]
    assert acme.get(f"/v1/approvals/{approval_id}").json()["status"] == "pending"

    edited = acme.post(path, json={"arguments": {"order_id": "E-5", "amount": 150}, "wait": True})
    assert edited.status_code == 200, edited.text
    assert edited.json()["run"]["status"] == "completed"
    assert [line.split(" pid=")[0] for line in _refunds(replica, "E-5")] == ["refund E-5 150"]


# ---------------------------------------------------------------- bad input


def _declared_too_large(client: httpx.Client) -> tuple[int, dict[str, Any]]:
    """Send only the headers of a 10 MB body; return the answer's status and JSON body.

    Nothing unread is left on the service's socket when it closes, so no TCP
    reset can cut off its 413 (as one can when a client is still uploading).
    """
    url = client.base_url
    token = client.headers["authorization"]
    head = (
        f"POST /v1/runs HTTP/1.1\r\nHost: {url.host}\r\nAuthorization: {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {10 * 1024 * 1024}\r\n\r\n"
    )
    with socket.create_connection((url.host, url.port or 80), timeout=30) as conn:
        conn.sendall(head.encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in headers.lower():
        size, _, tail = body.partition(b"\r\n")
        body = tail[: int(size, 16)]
    payload: dict[str, Any] = json.loads(body)
    return int(status_line.split()[1]), payload


def test_bad_bodies_are_4xx_with_a_clear_message(acme: httpx.Client) -> None:
    status, error = _declared_too_large(acme)
    assert status == 413 and error["error"]["type"] == "body_too_large"
    # A client still uploading the 10 MB may see the service's close (a TCP reset
    # over the unread bytes) before it reads the 413; either way nothing ran.
    try:
        huge = acme.post(
            "/v1/runs", content=b'{"input": "' + b"x" * (10 * 1024 * 1024) + b'"}',
            headers={"content-type": "application/json"},
        )  # fmt: skip
    except (httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError):
        pass
    else:
        assert huge.status_code == 413 and _error(huge)["type"] == "body_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        yield b'{"input": "'
        for _ in range(20):
            yield b"y" * (1024 * 1024)
        yield b'"}'

    # The service answers 413 as soon as the count passes the limit and closes the
    # connection; a client still uploading may see that close before it reads the 413.
    try:
        streamed = acme.post(
            "/v1/runs", content=chunks(), headers={"content-type": "application/json"}
        )
    except (httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError):
        pass
    else:
        assert streamed.status_code == 413
    assert acme.get("/healthz").status_code == 200  # the service is still up

    broken = acme.post(
        "/v1/runs", content=b'{"input": "x",', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400 and _error(broken)["type"] == "invalid_json"
    missing = acme.post("/v1/runs", json={"agent": "a"})
    assert missing.status_code == 422 and _error(missing)["message"].startswith("input:")
    extra = acme.post("/v1/runs", json={"input": "x", "admin": True})
    assert extra.status_code == 422
    wrong_type = acme.post("/v1/approvals/x/approve", json={"arguments": [1, 2]})
    assert wrong_type.status_code == 422
    assert acme.get("/v1/approvals", params={"status": "nonsense"}).status_code == 422


def test_a_rate_limit_holds_per_tenant(acme: httpx.Client, globex: httpx.Client) -> None:
    statuses = [
        acme.post("/v1/runs", json={"input": f"lookup R-{i}"}).json()["tool_calls"][0]["status"]
        for i in range(6)
    ]
    # Earlier tests made 2 acme lookups in this minute; the limit is 5 per tenant.
    assert statuses.count("ok") == 3 and statuses[3:] == ["denied"] * 3
    other = globex.post("/v1/runs", json={"input": "lookup G-1"}).json()
    assert other["tool_calls"][0]["status"] == "ok"


# ---------------------------------------------------------------- metrics, audit, schema


def test_metrics_audit_and_openapi(acme: httpx.Client, globex: httpx.Client) -> None:
    acme.post("/v1/runs", json={"input": "hi"})
    metrics = acme.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'agentrt_runs_total{status="completed"}' in text
    assert 'agentrt_calls_total{tool="lookup",status="ok"}' in text
    assert 'agentrt_run_duration_seconds_bucket{le="+Inf"}' in text
    assert "# TYPE agentrt_call_duration_seconds histogram" in text

    audit = acme.get("/v1/audit", params={"tool": "lookup", "status": "ok"}).json()
    assert audit["verified"]["ok"] is True and audit["records"]
    assert {r["fields"]["agentrt.tenant"] for r in audit["records"]} == {"acme"}
    theirs = globex.get("/v1/audit", params={"tool": "lookup"}).json()["records"]
    assert {r["fields"]["agentrt.tenant"] for r in theirs} == {"globex"}
    assert acme.get("/v1/audit", params={"since": "yesterday"}).status_code == 400

    schema = acme.get("/openapi.json").json()
    assert {"/v1/runs", "/v1/approvals/{approval_id}/approve", "/metrics"} <= set(schema["paths"])
