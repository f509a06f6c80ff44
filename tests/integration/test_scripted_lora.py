"""The scripted server's LoRA endpoints answer as vLLM does (wire format, errors, routing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.testing import ScriptedReply, ScriptedServer
from tests.conftest import load_captures


def _adapter(folder: Path, rank: int = 8) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": rank, "peft_type": "LORA"}))
    return folder


def _chat(client: httpx.Client, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return client.post("/chat/completions", json=body)


def _load(client: httpx.Client, name: str, path: Path | str) -> httpx.Response:
    return client.post("/load_lora_adapter", json={"lora_name": name, "lora_path": str(path)})


def test_load_list_answer_unload(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path / "a")
    handlers = {str(adapter): lambda _: ScriptedReply.message("tuned")}
    base = lambda _: ScriptedReply.message("base")  # noqa: E731
    with ScriptedServer(handler=base, model="smol", enable_lora=True, handlers=handlers) as server:
        with httpx.Client(base_url=server.base_url) as client:
            loaded = _load(client, "tools@v1", adapter)
            assert loaded.status_code == 200
            assert loaded.text == "Success: LoRA adapter 'tools@v1' added successfully."
            assert "content-type" not in loaded.headers  # vLLM's bare Response
            cards = client.get("/models").json()["data"]
            assert [(c["id"], c["parent"]) for c in cards] == [("smol", None), ("tools@v1", "smol")]
            assert cards[1]["root"] == str(adapter)
            answer = _chat(client, "tools@v1").json()
            assert answer["choices"][0]["message"]["content"] == "tuned"
            assert answer["model"] == "tools@v1"
            assert _chat(client, "smol").json()["choices"][0]["message"]["content"] == "base"
            gone = client.post("/unload_lora_adapter", json={"lora_name": "tools@v1"})
            assert gone.status_code == 200
            assert gone.text == "Success: LoRA adapter 'tools@v1' removed successfully."
            refused = _chat(client, "tools@v1")
        assert refused.status_code == 404
        assert refused.json() == {
            "error": {
                "message": "The model `tools@v1` does not exist.",
                "type": "NotFoundError",
                "param": "model",
                "code": 404,
            }
        }
        assert server.adapters is not None
        assert server.adapters.unknown_model_requests == ["tools@v1"]
        assert [(e.action, e.name, e.status) for e in server.adapters.events] == [
            ("load", "tools@v1", 200),
            ("unload", "tools@v1", 200),
        ]


def test_unknown_model_and_model_cards_match_the_vllm_captures(tmp_path: Path) -> None:
    captured = load_captures("unknown-model")[0]
    real_cards = load_captures("models")[0]["response"]["data"]
    adapter = _adapter(tmp_path / "adapter")
    with (
        ScriptedServer(
            model="smol", lora_modules={"tuned": adapter}, model_root="/tmp/w/base"
        ) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        reply = client.post("/chat/completions", json=captured["request"])
        cards = client.get("/models").json()["data"]
    assert (reply.status_code, reply.json()) == (captured["status"], captured["response"])
    for mine, real in zip(cards, real_cards, strict=True):
        assert set(mine) == set(real)
        assert (mine["id"], mine["parent"], mine["owned_by"]) == (
            real["id"], real["parent"], real["owned_by"]
        )  # fmt: skip
    assert cards[0]["root"] == real_cards[0]["root"]


@pytest.mark.parametrize(
    ("body", "status", "kind", "message"),
    [
        ({"lora_name": "x"}, 400, "InvalidUserInput",
         "Both 'lora_name' and 'lora_path' must be provided."),
        ({"lora_name": "x", "lora_path": "/nowhere"}, 404, "NotFoundError",
         "Loading lora x failed: No adapter found for /nowhere"),
    ],
)  # fmt: skip
def test_load_errors(body: dict[str, Any], status: int, kind: str, message: str) -> None:
    with (
        ScriptedServer(model="smol", enable_lora=True) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        reply = client.post("/load_lora_adapter", json=body)
    assert reply.status_code == status
    assert reply.json()["error"] == {
        "message": message,
        "type": kind,
        "param": None,
        "code": status,
    }


def test_a_name_loads_once_and_rank_is_capped(tmp_path: Path) -> None:
    small, big = _adapter(tmp_path / "small", 8), _adapter(tmp_path / "big", 32)
    with (
        ScriptedServer(model="smol", enable_lora=True, max_lora_rank=16) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        assert _load(client, "a", small).status_code == 200
        again = _load(client, "a", small)
        too_big = _load(client, "b", big)
        unknown = client.post("/unload_lora_adapter", json={"lora_name": "nope"})
        nameless = client.post("/unload_lora_adapter", json={})
    assert again.status_code == 400
    assert again.json()["error"]["message"] == (
        "The lora adapter 'a' has already been loaded. If you want to load the adapter in "
        "place, set 'load_inplace' to True."
    )
    assert too_big.status_code == 500
    assert too_big.json()["error"]["type"] == "InternalServerError"
    assert too_big.json()["error"]["message"] == "LoRA rank 32 is greater than max_lora_rank 16."
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "The lora adapter 'nope' cannot be found."
    assert nameless.status_code == 400
    assert server.adapters is not None
    assert set(server.adapters.loaded) == {"a"}


def test_without_runtime_updating_the_routes_do_not_exist(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path / "a")
    with (
        ScriptedServer(
            model="smol", lora_modules={"static": adapter}, runtime_lora_updating=False
        ) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        reply = _load(client, "x", adapter)
        ids = [c["id"] for c in client.get("/models").json()["data"]]
    assert (reply.status_code, reply.json()) == (404, {"detail": "Not Found"})
    assert ids == ["smol", "static"]


def test_plain_server_keeps_accepting_any_model_name() -> None:
    with ScriptedServer([ScriptedReply.message("ok")]) as server:
        with httpx.Client(base_url=server.base_url) as client:
            assert _chat(client, "whatever").status_code == 200
        assert server.adapters is None
