"""The HTTP exchange with a chat-completions endpoint: a JSON body out, a body or events back.

`OpenAICompatibleClient` owns retries, time limits and what each failure
means; this module only sends one request and reports what came back, as
text, as a streamed response, or as one of three failures: `HTTPFailure` (the
server answered with an error status), `Unreachable` (no answer: refused,
reset or dropped before a response) and `TransportTimeout` (httpx's own
backstop limit ran out).

It sends through one pooled httpx client with a body encoded here, not
through the OpenAI SDK's request machinery, which builds options models,
headers, a parsed URL and a generically encoded body for every request: about
half the event loop's own work per model turn, which many concurrent runs on
one loop feel as lag. The wire format is the same.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = ["ChatTransport", "HTTPFailure", "TransportTimeout", "Unreachable", "encode_body"]

# What the OpenAI SDK sends too: compact UTF-8 JSON, and no NaN (not JSON).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_body(request: Mapping[str, Any]) -> bytes:
    """A request body as the endpoint reads it (compact UTF-8 JSON)."""
    return _ENCODER.encode(request).encode("utf-8")


class HTTPFailure(Exception):
    """The endpoint answered with an error status (4xx, 5xx).

    Attributes:
        status_code: The HTTP status.
        body: The error body, parsed when it is JSON, else its text.
        headers: The response headers (`retry-after`, ...).
    """

    def __init__(self, status_code: int, text: str, headers: Mapping[str, str]) -> None:
        body: Any = text.strip()
        with contextlib.suppress(ValueError):
            body = json.loads(body)
        super().__init__(f"Error code: {status_code} - {body}")
        self.status_code = status_code
        self.body = body
        self.headers = headers


class Unreachable(Exception):
    """No answer came: the connection was refused, reset or dropped before a response.

    The underlying error is the `__cause__`.
    """


class TransportTimeout(Exception):
    """httpx's own time limit ran out (a backstop behind the client's limits)."""


class ChatTransport:
    """POSTs chat-completions bodies to one endpoint over pooled connections.

    Args:
        base_url: E.g. `http://127.0.0.1:8000/v1`; requests go to
            `BASE_URL/chat/completions`.
        api_key: Sent as a bearer token.
        timeout_s: httpx's limit for each phase of a request.
    """

    def __init__(self, base_url: str, api_key: str, timeout_s: float) -> None:
        import httpx  # deferred: keeps `import runtime` cheap

        self._timeout_errors = httpx.TimeoutException
        self._http_errors = (httpx.HTTPError, OSError)
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            # The OpenAI SDK's defaults; the client bounds requests in flight itself.
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
            follow_redirects=True,
        )
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._stream_headers = {**self._headers, "Accept": "text/event-stream"}

    async def post(self, body: bytes) -> str:
        """Send `body`; the reply's text.

        Raises:
            HTTPFailure: An error status.
            Unreachable: No response.
            TransportTimeout: httpx's limit ran out.
        """
        try:
            response = await self._http.post(self.url, content=body, headers=self._headers)
        except self._timeout_errors as exc:
            raise TransportTimeout(str(exc)) from exc
        except self._http_errors as exc:
            raise Unreachable(str(exc)) from exc
        if response.status_code >= 400:
            raise HTTPFailure(response.status_code, response.text, response.headers)
        return response.text

    @contextlib.asynccontextmanager
    async def stream(self, body: bytes) -> AsyncIterator[httpx.Response]:
        """Send `body` and yield the response once its head arrived; closed on exit.

        Raises:
            HTTPFailure: An error status (its body read first).
            Unreachable: No response.
            TransportTimeout: httpx's limit ran out before the response head.
        """
        request = self._http.build_request(
            "POST", self.url, content=body, headers=self._stream_headers
        )
        try:
            response = await self._http.send(request, stream=True)
        except self._timeout_errors as exc:
            raise TransportTimeout(str(exc)) from exc
        except self._http_errors as exc:
            raise Unreachable(str(exc)) from exc
        try:
            if response.status_code >= 400:
                await response.aread()
                raise HTTPFailure(response.status_code, response.text, response.headers)
            yield response
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
