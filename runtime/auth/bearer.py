"""An ASGI middleware that lets through only requests with a known bearer token.

`BearerAuth` reads `Authorization: Bearer TOKEN`, looks the token up in a
`TokenTable` and passes the request on with the matching `Principal` in the
ASGI scope (`principal_of(scope)` reads it back). A request without a
header, with another scheme, or with a token no entry has, is answered 401
with `WWW-Authenticate: Bearer` and never reaches the application. The token
is not logged and not kept in the scope.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from runtime.auth.tokens import Principal, TokenTable

__all__ = ["SCOPE_KEY", "BearerAuth", "bearer_token", "principal_of"]

log = logging.getLogger(__name__)

#: Where the principal goes in the ASGI scope.
SCOPE_KEY = "agentrt.principal"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REFUSAL = "a valid bearer token is required (Authorization: Bearer TOKEN)"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` value (scheme case-insensitive), or None."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def principal_of(scope: MutableMapping[str, Any] | None) -> Principal | None:
    """The principal `BearerAuth` put in an ASGI scope, or None."""
    if scope is None:
        return None
    found = scope.get(SCOPE_KEY)
    return found if isinstance(found, Principal) else None


def _rfc6750_body(message: str) -> bytes:
    return json.dumps({"error": "invalid_token", "error_description": message}).encode()


class BearerAuth:
    """Refuse HTTP requests without a known bearer token; tag the rest with their principal.

    Args:
        app: The ASGI application behind the check.
        tokens: The known tokens.
        body: The JSON body of a 401 answer, given the sentence saying why
            (RFC 6750's `{"error": "invalid_token", ...}` by default).
    """

    def __init__(
        self,
        app: ASGIApp,
        tokens: TokenTable,
        *,
        body: Callable[[str], bytes] = _rfc6750_body,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):  # lifespan: nothing to authenticate
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope.get("headers", ()):
            if name.lower() == b"authorization":
                header = value.decode("latin-1")
                break
        token = bearer_token(header)
        principal = self.tokens.lookup(token) if token is not None else None
        if principal is None:
            client = scope.get("client") or ("?", 0)
            log.warning(
                "refused an HTTP request from %s: %s",
                client[0],
                "no bearer token" if token is None else "unknown bearer token",
            )
            await self._refuse(send, presented=token is not None)
            return
        scope = dict(scope)
        scope[SCOPE_KEY] = principal
        await self.app(scope, receive, send)

    async def _refuse(self, send: Send, *, presented: bool) -> None:
        challenge = 'Bearer realm="agentrt"'
        if presented:
            challenge += ', error="invalid_token"'
        body = self.body(REFUSAL)
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", challenge.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
