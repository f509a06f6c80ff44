"""Bearer tokens: which tenant a request acts for.

The tokens file (YAML)::

    tokens:
      - {token: "s3cr3t-acme", tenant: acme}
      - {token: "old-globex", tenant: globex, expires: "2025-01-01T00:00:00Z"}

A presented token is compared with every configured one in constant time
(`hmac.compare_digest` on SHA-256 digests, no early exit), so timing says
nothing about how much of a token was right. Tokens are never logged nor
put in an error message.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import os
import time
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Identity", "TokenError", "Tokens"]


class TokenError(ValueError):
    """The tokens file cannot be used; the message says what to fix."""


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    """Who a request acts for."""

    tenant: str
    name: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    digest: bytes
    identity: Identity
    expires_at: float | None


class Tokens:
    """The configured tokens; `check` maps a presented token to its tenant."""

    def __init__(self, entries: list[_Entry]) -> None:
        self._entries = entries

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Tokens:
        """Read a tokens file.

        Raises:
            TokenError: Missing file, bad YAML, or an entry without token or tenant.
        """
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise TokenError(f"cannot read the tokens file {path}: {exc}") from None
        items = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(items, list) or not items:
            raise TokenError(f"{path}: expected `tokens: [{{token: ..., tenant: ...}}, ...]`")
        return cls([_entry(item, index, path) for index, item in enumerate(items)])

    def check(self, presented: str, *, now: float | None = None) -> Identity | None:
        """The identity of a valid, unexpired token, else None."""
        digest = hashlib.sha256(presented.encode("utf-8", "replace")).digest()
        moment = time.time() if now is None else now
        found: Identity | None = None
        for entry in self._entries:  # every entry, whatever matched: constant time
            match = hmac.compare_digest(digest, entry.digest)
            live = entry.expires_at is None or entry.expires_at > moment
            if match and live:
                found = entry.identity
        return found

    @property
    def tenants(self) -> set[str]:
        """Every tenant a token names."""
        return {entry.identity.tenant for entry in self._entries}


def _entry(item: Any, index: int, path: str | os.PathLike[str]) -> _Entry:
    if not isinstance(item, dict):
        raise TokenError(f"{path}: tokens[{index}] is not a mapping")
    token, tenant = item.get("token"), item.get("tenant")
    if not isinstance(token, str) or len(token) < 8:
        raise TokenError(f"{path}: tokens[{index}].token must be a string of 8+ characters")
    if not isinstance(tenant, str) or not tenant:
        raise TokenError(f"{path}: tokens[{index}].tenant must be a non-empty string")
    expires = item.get("expires")
    expires_at = None
    if expires is not None:
        try:
            moment = (
                expires
                if isinstance(expires, dt.datetime)
                else dt.datetime.fromisoformat(str(expires).replace("Z", "+00:00"))
            )
        except ValueError:
            raise TokenError(f"{path}: tokens[{index}].expires is not an ISO 8601 time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        expires_at = moment.timestamp()
    name = item.get("name")
    return _Entry(
        hashlib.sha256(token.encode("utf-8")).digest(),
        Identity(tenant, str(name) if name is not None else None),
        expires_at,
    )
