"""Bearer tokens for the runtime's HTTP services: who a token speaks for.

A tokens file maps each token to a tenant (and, optionally, an agent), the
identity policy scopes and the audit log read::

    tokens:
      - token: "kq3V...long random string..."
        tenant: acme
        agent: support-bot        # optional
      - token: "Zr8b..."
        tenant: globex

It is read as strictly as a policy file (duplicate keys, unknown keys and
YAML 1.1 guesses are errors naming the line). A token is at least
`MIN_TOKEN_LENGTH` characters of the RFC 6750 token alphabet, and no two
entries share one. No message, repr or log line ever contains a token: the
table keeps only their SHA-256 digests, and `lookup` compares a presented
token with every entry in constant time (`hmac.compare_digest`), so the
answer's timing does not say which entry, or how much of one, matched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from pathlib import Path

import pydantic

from runtime.policy.loader import PolicyLoadError, read_strict_yaml, validation_problems

__all__ = ["MIN_TOKEN_LENGTH", "Principal", "TokenFileError", "TokenTable", "load_tokens"]

MIN_TOKEN_LENGTH = 16
# RFC 6750 b64token: what a client can send after "Bearer " without quoting
_TOKEN_PATTERN = r"^[A-Za-z0-9\-._~+/]+=*$"
_TOKEN_RE = re.compile(_TOKEN_PATTERN)


class TokenFileError(ValueError):
    """The tokens file cannot be used; the message names the file, line and key (never a token)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """Who a request speaks for, as its token says.

    Attributes:
        tenant: The tenant policy scopes and audit records name.
        agent: The agent name, when the token is one agent's.
        entry: Which entry of the tokens file matched (`tokens[2]`): an
            identity for the token that is not the token.
    """

    tenant: str
    agent: str | None
    entry: str


class _Entry(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    # the pattern is not in the message pydantic writes, so a refused token is never echoed
    token: str = pydantic.Field(min_length=MIN_TOKEN_LENGTH, max_length=4096)
    tenant: str = pydantic.Field(min_length=1, max_length=128)
    agent: str | None = pydantic.Field(default=None, min_length=1, max_length=128)

    @pydantic.field_validator("token")
    @classmethod
    def _alphabet(cls, value: str) -> str:
        if not _TOKEN_RE.match(value):
            raise ValueError(
                "a token may hold only letters, digits and - . _ ~ + / (then = padding); "
                "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return value


class _TokensFile(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    tokens: list[_Entry] = pydantic.Field(min_length=1)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenTable:
    """Tokens by digest, each with the principal it speaks for.

    Args:
        entries: `(token, principal)` pairs; the tokens themselves are not kept.
    """

    def __init__(self, entries: Iterable[tuple[str, Principal]]) -> None:
        self._entries = tuple((_digest(token), principal) for token, principal in entries)

    def lookup(self, token: str) -> Principal | None:
        """The principal `token` speaks for, or None for a token no entry has.

        Every entry is compared, each in constant time, whatever matched first.
        """
        presented = _digest(token)
        found: Principal | None = None
        for digest, principal in self._entries:
            if hmac.compare_digest(presented, digest) and found is None:
                found = principal
        return found

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"TokenTable({len(self._entries)} token(s))"


def load_tokens(path: str | os.PathLike[str]) -> TokenTable:
    """Read a tokens file strictly.

    Raises:
        TokenFileError: The file is missing, is not strict YAML, breaks the
            format, or two entries share a token.
    """
    source = Path(path)
    if not source.is_file():
        raise TokenFileError(f"tokens file {source} does not exist")
    try:
        data, lines = read_strict_yaml(source)
        try:
            parsed = _TokensFile.model_validate(data)
        except pydantic.ValidationError as exc:
            raise PolicyLoadError(validation_problems(str(source), data, lines, exc)) from None
    except PolicyLoadError as exc:
        detail = "\n".join(f"  {problem}" for problem in exc.problems)
        raise TokenFileError(
            f"refusing to load tokens file ({len(exc.problems)} problem(s)):\n{detail}"
        ) from None
    first: dict[bytes, int] = {}
    for index, entry in enumerate(parsed.tokens):
        earlier = first.setdefault(_digest(entry.token), index)
        if earlier != index:
            line = lines.get(("tokens", index, "token"))
            where = f"{source}:{line}" if line else str(source)
            raise TokenFileError(
                f"refusing to load tokens file: {where}: tokens[{index}].token is the same "
                f"token as tokens[{earlier}]; give each entry its own"
            )
    return TokenTable(
        (entry.token, Principal(entry.tenant, entry.agent, f"tokens[{index}]"))
        for index, entry in enumerate(parsed.tokens)
    )
