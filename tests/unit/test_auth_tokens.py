"""The tokens file and the bearer check: strict loading, lookup, 401s, and no token ever echoed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime.auth import BearerAuth, TokenFileError, bearer_token, load_tokens, principal_of
from runtime.auth.tokens import MIN_TOKEN_LENGTH

ACME = "acme-0123456789abcdefXYZ"
GLOBEX = "globex-0123456789abcdef~"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tokens.yaml"
    path.write_text(text)
    return path


def test_lookup_maps_each_token_to_its_tenant_and_agent(tmp_path: Path) -> None:
    table = load_tokens(
        write(
            tmp_path,
            f'tokens:\n  - token: "{ACME}"\n    tenant: acme\n    agent: bot\n'
            f'  - token: "{GLOBEX}"\n    tenant: globex\n',
        )
    )
    acme, globex = table.lookup(ACME), table.lookup(GLOBEX)
    assert acme is not None and (acme.tenant, acme.agent, acme.entry) == (
        "acme",
        "bot",
        "tokens[0]",
    )
    assert globex is not None and (globex.tenant, globex.agent) == ("globex", None)
    assert table.lookup(ACME[:-1]) is None
    assert table.lookup(ACME + "x") is None
    assert table.lookup("") is None
    assert len(table) == 2
    assert ACME not in repr(table)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f'tokens:\n  - token: "{ACME}"\n    tenant: acme\n    tennant: x\n',
            "unknown key 'tennant'",
        ),
        (f'tokens:\n  - token: "{ACME}"\n', "missing required key 'tenant'"),
        ('tokens:\n  - token: "short"\n    tenant: acme\n', f"at least {MIN_TOKEN_LENGTH}"),
        (f'tokens:\n  - token: "{ACME} x"\n    tenant: acme\n', "may hold only letters"),
        (
            f'tokens:\n  - token: "{ACME}"\n    tenant: acme\n  - token: "{ACME}"\n    tenant: b\n',
            "tokens[1].token is the same token as tokens[0]",
        ),
        (f'tokens:\n  - token: "{ACME}"\n    tenant: acme\n    tenant: b\n', "duplicate key"),
        ("tokens: []\n", "at least 1 item"),
        (
            f'tokens:\n  - token: "{ACME}"\n    tenant: yes\n',
            "bare 'yes' would be read as a boolean",
        ),
    ],
)
def test_the_file_is_strict_and_never_echoes_a_token(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(TokenFileError) as refused:
        load_tokens(write(tmp_path, text))
    message = str(refused.value)
    assert expected in message, message
    assert "tokens.yaml:" in message  # the file, with a line
    assert ACME not in message and "'short'" not in message and '"short"' not in message


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match="does not exist"):
        load_tokens(tmp_path / "nope.yaml")


def test_bearer_token_parses_the_header() -> None:
    assert bearer_token(f"Bearer {ACME}") == ACME
    assert bearer_token(f"bearer   {ACME} ") == ACME
    assert bearer_token(f"Basic {ACME}") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


async def _request(app: BearerAuth, headers: list[tuple[bytes, bytes]]) -> tuple[Any, list[Any]]:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "client": ("1", 1)}
    await app(scope, receive, send)
    return scope, sent


async def test_the_middleware_refuses_without_a_known_token_and_tags_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    table = load_tokens(write(tmp_path, f'tokens:\n  - token: "{ACME}"\n    tenant: acme\n'))
    reached: list[Any] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(principal_of(scope))

    app = BearerAuth(inner, table)
    for headers in (
        [],
        [(b"authorization", f"Bearer {GLOBEX}".encode())],
        [(b"authorization", f"Basic {ACME}".encode())],
    ):
        _, sent = await _request(app, headers)
        start = sent[0]
        assert start["status"] == 401
        assert dict(start["headers"])[b"www-authenticate"].startswith(b"Bearer")
        assert b"invalid_token" in sent[1]["body"]
    assert reached == []
    _, sent = await _request(app, [(b"Authorization", f"Bearer {ACME}".encode())])
    assert sent == [] and len(reached) == 1 and reached[0].tenant == "acme"
    assert GLOBEX not in caplog.text and ACME not in caplog.text
    assert "unknown bearer token" in caplog.text
