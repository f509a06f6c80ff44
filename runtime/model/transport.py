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
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ChatTransport",
    "EncodedTools",
    "HTTPFailure",
    "TransportTimeout",
    "Unreachable",
    "encode_body",
]

# What the OpenAI SDK sends too: compact UTF-8 JSON, and no NaN (not JSON).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class EncodedTools(list[dict[str, Any]]):
    """A `tools` list that carries its JSON, encoded once, for every request that sends it.

    The same tool schemas go out with every turn of every run; encoding them
    each time cost ~20 µs per request for the five small built-in tools, and
    grows with every tool. `encode_body` splices this JSON in instead, as long
    as the list still holds exactly the dicts it was encoded from; the dicts
    themselves must not be changed (`RequestBuilder` owns the ones it makes).
    """

    json: bytes
    _members: tuple[dict[str, Any], ...]

    def __init__(self, tools: Iterable[dict[str, Any]] = ()) -> None:
        super().__init__(tools)
        self._members = tuple(self)
        self.json = _ENCODER.encode(self._members).encode("utf-8")

    def share(self) -> EncodedTools:
        """A new list of the same dicts with the same JSON (nothing encoded again)."""
        twin = EncodedTools.__new__(EncodedTools)
        list.__init__(twin, self._members)
        twin._members = self._members
        twin.json = self.json
        return twin

    def encoded(self) -> bytes | None:
        """The JSON, or None when the list no longer holds the dicts it was encoded from."""
        members = self._members
        if len(self) != len(members) or any(a is not b for a, b in zip(self, members, strict=True)):
            return None
        return self.json


def encode_body(request: Mapping[str, Any]) -> bytes:
    """A request body as the endpoint reads it (compact UTF-8 JSON).

    `tools` given as `EncodedTools` are spliced in as encoded.
    """
    tools = request.get("tools")
    wire = tools.encoded() if isinstance(tools, EncodedTools) else None
    if wire is None:
        return _ENCODER.encode(request).encode("utf-8")
    head = _ENCODER.encode({k: v for k, v in request.items() if k != "tools"}).encode("utf-8")
    return b"".join((head[:-1], b',"tools":' if len(head) > 2 else b'"tools":', wire, b"}"))


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
