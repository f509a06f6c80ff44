"""The adapter endpoints' answers, including older vLLM error shapes and non-JSON replies."""

from __future__ import annotations

import httpx
import pytest

from runtime.deploy.server import AdapterServer, AdapterServerError


def _server(status: int, **reply: object) -> AdapterServer:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer k"
        return httpx.Response(status, **reply)  # type: ignore[arg-type]

    return AdapterServer("http://vllm/v1/", api_key="k", transport=httpx.MockTransport(answer))


@pytest.mark.parametrize(
    ("status", "reply", "kind", "message"),
    [
        (400, {"json": {"object": "error", "message": "The lora adapter 'a' has already been "
                        "loaded.", "type": "InvalidUserInput", "param": None, "code": 400}},
         "InvalidUserInput", "The lora adapter 'a' has already been loaded."),
        (404, {"json": {"detail": "Not Found"}}, "not_enabled",
         "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"),
        (502, {"text": "<html>bad gateway</html>"}, "http_error", "answered 502: <html>bad"),
    ],
)  # fmt: skip
async def test_errors(status: int, reply: dict[str, object], kind: str, message: str) -> None:
    async with _server(status, **reply) as server:
        with pytest.raises(AdapterServerError) as raised:
            await server.load("a", "/p")
    assert raised.value.kind == kind and raised.value.status == status
    assert message in str(raised.value)


async def test_success_is_plain_text_and_models_parse() -> None:
    async with _server(200, text="Success: LoRA adapter 'a' added successfully.") as server:
        assert await server.load("a", "/p") == "Success: LoRA adapter 'a' added successfully."
    cards = {"data": [{"id": "smol", "root": "/m", "parent": None},
                      {"id": "a@v1", "root": "/p", "parent": "smol"}]}  # fmt: skip
    async with _server(200, json=cards) as server:
        assert (await server.base()).id == "smol"
        assert [c.parent for c in await server.models()] == [None, "smol"]


async def test_an_unreachable_server() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    server = AdapterServer("http://vllm/v1", transport=httpx.MockTransport(refuse))
    with pytest.raises(AdapterServerError, match="cannot reach the model server") as raised:
        await server.models()
    await server.aclose()
    assert raised.value.kind == "unreachable" and raised.value.status is None
