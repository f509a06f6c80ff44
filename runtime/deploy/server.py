"""The adapter endpoints of a vLLM OpenAI-compatible server, over HTTP.

vLLM started with `--enable-lora` and `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`
loads and unloads LoRA adapters at run time:

- `POST /v1/load_lora_adapter {"lora_name": NAME, "lora_path": PATH}` answers
  200 with plain text ("Success: LoRA adapter 'NAME' added successfully.");
- `POST /v1/unload_lora_adapter {"lora_name": NAME}` likewise;
- `GET /v1/models` lists the base (`parent` null, `root` its path) and every
  loaded adapter (`root` its path, `parent` the base's name).

Errors come as `{"error": {"message", "type", "param", "code"}}` (older vLLM:
the same fields at the top level); without runtime updating the two routes do
not exist (FastAPI's 404 `{"detail": "Not Found"}`). `PATH` is read by the
server, so it is a path on the server's machine.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

__all__ = ["AdapterServer", "AdapterServerError", "ModelCard"]


@dataclasses.dataclass(frozen=True, slots=True)
class ModelCard:
    """One entry of `/v1/models`: the base (`parent` None) or a loaded adapter."""

    id: str
    root: str | None
    parent: str | None


class AdapterServerError(Exception):
    """The server did not do what was asked.

    Attributes:
        status: The HTTP status (None when the server could not be reached).
        kind: vLLM's error type (`InvalidUserInput`, `NotFoundError`,
            `InternalServerError`, ...), `unreachable`, or `not_enabled` (the
            server has no runtime adapter endpoints).
    """

    def __init__(self, message: str, *, status: int | None, kind: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


class AdapterServer:
    """Lists, loads and unloads adapters on one vLLM server.

    Args:
        base_url: The OpenAI-compatible URL, e.g. `http://127.0.0.1:8000/v1`.
        api_key: Sent as a bearer token (vLLM's `--api-key` guards these routes too).
        timeout: Seconds for one request (loading a large adapter takes a while).
        transport: An httpx transport (tests).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(timeout=timeout, headers=headers, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AdapterServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(self, method: str, route: str, body: Any = None) -> httpx.Response:
        url = f"{self.base_url}/{route}"
        try:
            response = await self._http.request(method, url, json=body)
        except httpx.HTTPError as exc:
            raise AdapterServerError(
                f"cannot reach the model server at {self.base_url}: {exc or type(exc).__name__}",
                status=None,
                kind="unreachable",
            ) from None
        if response.status_code >= 400:
            raise _error(response, route, self.base_url)
        return response

    async def models(self) -> list[ModelCard]:
        """What the server serves now: the base, then each loaded adapter."""
        response = await self._send("GET", "models")
        try:
            data = response.json()["data"]
            return [
                ModelCard(str(card["id"]), card.get("root"), card.get("parent")) for card in data
            ]
        except (ValueError, KeyError, TypeError):
            raise AdapterServerError(
                f"{self.base_url}/models did not answer a model list",
                status=response.status_code,
                kind="bad_response",
            ) from None

    async def base(self) -> ModelCard:
        """The served base model (the first card without a parent)."""
        for card in await self.models():
            if card.parent is None:
                return card
        raise AdapterServerError(
            f"{self.base_url}/models lists no base model", status=200, kind="bad_response"
        )

    async def load(self, name: str, path: str) -> str:
        """Load the adapter at `path` (on the server's machine) as `name`; the server's answer."""
        response = await self._send(
            "POST", "load_lora_adapter", {"lora_name": name, "lora_path": path}
        )
        return response.text

    async def unload(self, name: str) -> str:
        """Unload the adapter served as `name`; the server's answer."""
        response = await self._send("POST", "unload_lora_adapter", {"lora_name": name})
        return response.text


def _error(response: httpx.Response, route: str, base_url: str) -> AdapterServerError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("detail") == "Not Found" and "lora" in route:
        return AdapterServerError(
            f"the server at {base_url} does not load adapters at run time (no /{route}): start "
            "vLLM with --enable-lora and the environment variable "
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True",
            status=response.status_code,
            kind="not_enabled",
        )
    error = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return AdapterServerError(
            str(error["message"]), status=response.status_code, kind=str(error.get("type") or "")
        )
    text = response.text.strip()[:300] or response.reason_phrase
    return AdapterServerError(
        f"{base_url}/{route} answered {response.status_code}: {text}",
        status=response.status_code,
        kind="http_error",
    )
