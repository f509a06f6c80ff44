"""Redaction: policy paths, secret keys and patterns, size caps, HMAC, results.

The end-to-end tests plant secrets in every place a pipeline may put them and
grep the raw bytes of every file the sink wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime.audit.chain import HashChainSink
from runtime.audit.redaction import Redactor, arguments_hmac, redact_text

KEY = b"test-audit-key"

# Each planted value must never appear in a log file. Built by concatenation
# so this source file does not itself look like it holds live credentials.
OPENAI = "sk-" + "proj-" + "Z9x8Y7w6V5u4T3s2R1q0"
AWS = "AKIA" + "IOSFODNN7EXAMPLE"
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
SLACK = "xoxb-" + "123456789012-abcdefghijkl"
GOOGLE = "AIza" + "SyA1234567890abcdefghijklmnopqrstuv"
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
JWT = (
    "eyJhbGciOiJIUzI1NiJ9"
    + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0"
    + ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)
BEARER = "tok3nV4lue.abc-XYZ_123"
PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"
URL_PASSWORD = "s3cr3t-Pa55"
PLAIN_PASSWORD = "hunter2-correct-horse"
CARD = "4111111111111111"

PATTERN_SECRETS = [OPENAI, AWS, GITHUB, SLACK, GOOGLE, STRIPE, JWT, BEARER, PEM_BODY, URL_PASSWORD]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"key {OPENAI} end", "api_key"),
        (f"id={AWS}", "aws_access_key"),
        (f"token {GITHUB}", "github_token"),
        (f"slack {SLACK}", "slack_token"),
        (f"g {GOOGLE}", "google_api_key"),
        (f"stripe {STRIPE}", "stripe_key"),
        (f"jwt {JWT}", "jwt"),
        (f"Authorization: Bearer {BEARER}", "bearer_token"),
        (f"pem {PEM} tail", "private_key"),
        (f"postgres://bob:{URL_PASSWORD}@db:5432/app", "url_password"),
    ],
)
def test_secret_patterns_are_replaced(text: str, kind: str) -> None:
    redacted = redact_text(text)
    assert f"[REDACTED:{kind}]" in redacted or "[REDACTED]" in redacted
    for secret in PATTERN_SECRETS:
        assert secret not in redacted


def test_truncated_pem_without_end_is_redacted_to_the_end() -> None:
    assert PEM_BODY not in redact_text(f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}")


@pytest.mark.parametrize(
    "text",
    [
        f"login failed: password={PLAIN_PASSWORD}",
        f"{{'password': '{PLAIN_PASSWORD}'}}",
        f'{{"api_key": "{PLAIN_PASSWORD}"}}',
        f"client_secret: {PLAIN_PASSWORD}",
        f'{{\\"password\\": \\"{PLAIN_PASSWORD}\\"}}',
    ],
)
def test_labelled_secrets_in_free_text_are_replaced(text: str) -> None:
    assert PLAIN_PASSWORD not in redact_text(text)


@pytest.mark.parametrize(
    "text",
    ["task-abcdefghijklmnopqrstu", "max_tokens=100", "weather in Paris", "ab" * 32, "desk-1234"],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_policy_paths_wildcards_and_lists() -> None:
    redactor = Redactor(
        redact_paths=["args.password", "args.card.number", "args.users.*.pin", "args.tags.*"]
    )
    out = redactor.redact_fields(
        {
            "agentrt.tool.arguments": {
                "password": "x",
                "card": {"number": CARD, "exp": "12/30"},
                "users": [{"pin": "1234", "name": "ann"}, {"pin": "9999"}],
                "tags": ["a", "b"],
                "query": "weather",
            }
        }
    )
    args = out["agentrt.tool.arguments"]
    assert args["password"] == {"redacted": "path"}
    assert args["card"] == {"number": {"redacted": "path"}, "exp": "12/30"}
    assert args["users"] == [
        {"pin": {"redacted": "path"}, "name": "ann"},
        {"pin": {"redacted": "path"}},
    ]
    assert args["tags"] == [{"redacted": "path"}, {"redacted": "path"}]
    assert args["query"] == "weather"


def test_secret_key_names_are_redacted_at_any_depth() -> None:
    out = Redactor().redact_fields(
        {"custom": {"nested": [{"Api-Key": "zzz", "refresh_token": "yyy", "tokens": 5}]}}
    )
    assert out["custom"]["nested"][0] == {
        "Api-Key": {"redacted": "key"},
        "refresh_token": {"redacted": "key"},
        "tokens": 5,
    }


def test_size_caps_keep_length_and_hash() -> None:
    redactor = Redactor(value_cap=10, arguments_cap=200, text_cap=20)
    out = redactor.redact_fields(
        {
            "agentrt.tool.arguments": {"blob": "x" * 50},
            "agentrt.error.message": "e" * 100,
        }
    )
    blob = out["agentrt.tool.arguments"]["blob"]
    assert blob["redacted"] == "size" and blob["len"] == 50 and len(blob["sha256"]) == 64
    assert out["agentrt.error.message"].startswith("e" * 20 + "…[truncated")
    big = redactor.redact_fields({"agentrt.tool.arguments": {"k": list(range(500))}})
    assert big["agentrt.tool.arguments"]["redacted"] == "size"


def test_arguments_hmac_lets_an_auditor_confirm_a_claimed_value() -> None:
    arguments = {"password": PLAIN_PASSWORD, "user": "ann"}
    out = Redactor(redact_paths=["args.password"], hmac_key=KEY).redact_fields(
        {"agentrt.tool.arguments": arguments}
    )
    stored = out["agentrt.tool.arguments_hmac"]
    assert stored == arguments_hmac({"user": "ann", "password": PLAIN_PASSWORD}, KEY)
    assert stored != arguments_hmac({"password": "wrong", "user": "ann"}, KEY)
    raw = Redactor(hmac_key=KEY).redact_fields({"agentrt.tool.arguments": "{not json"})
    assert raw["agentrt.tool.arguments_hmac"] == arguments_hmac("{not json", KEY)


def test_results_are_hashed_by_default_and_stored_on_request() -> None:
    fields = {"agentrt.tool.result": {"rows": [1, 2], "token": "t"}, "agentrt.tool.stdout": "hi"}
    hashed = Redactor().redact_fields(fields)
    assert "agentrt.tool.result" not in hashed and "agentrt.tool.stdout" not in hashed
    assert hashed["agentrt.tool.result_bytes"] == len(b'{"rows":[1,2],"token":"t"}')
    assert len(hashed["agentrt.tool.result_sha256"]) == 64
    stored = Redactor(store_results=True).redact_fields(fields)
    assert stored["agentrt.tool.result"] == {"rows": [1, 2], "token": {"redacted": "key"}}
    assert stored["agentrt.tool.stdout"] == "hi"


def _planted_fields() -> dict[str, Any]:
    return {
        "gen_ai.tool.name": "login",
        "agentrt.tool.arguments": {
            "password": PLAIN_PASSWORD,
            "card": {"number": CARD},
            "note": f"use {OPENAI} or {AWS}",
            "deep": [{"x": {"y": [f"Bearer {BEARER}", GITHUB]}}],
            "dsn": f"mysql://root:{URL_PASSWORD}@localhost/db",
        },
        "agentrt.tool.arguments_raw": json.dumps(
            {"password": PLAIN_PASSWORD, "card": {"number": CARD}, "k": SLACK}
        ),
        "agentrt.error.message": f"auth failed for {GOOGLE}; password={PLAIN_PASSWORD}",
        "agentrt.error.details": [
            "Traceback (most recent call last):",
            '  File "tool.py", line 3, in login',
            f"    client = Client(api_key='{STRIPE}', jwt='{JWT}')",
            PEM,
        ],
        "agentrt.tool.result": {"session": JWT},
        "agentrt.tool.stdout": f"connected with {OPENAI}",
        "agentrt.tool.stderr": f"warning: {AWS}",
        "custom.unknown": {"auth": f"Bearer {BEARER}", "password": PLAIN_PASSWORD},
    }


@pytest.mark.parametrize("store_results", [False, True])
def test_planted_secrets_never_reach_the_files(tmp_path: Path, store_results: bool) -> None:
    log = tmp_path / "audit.jsonl"
    with HashChainSink(
        log,
        hmac_key=KEY,
        redact_paths=["args.password", "args.card.number"],
        store_results=store_results,
    ) as sink:
        sink.write("tool.proposed", _planted_fields())
        sink.write("execution.finished", _planted_fields())
    everything = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"execution.finished" in everything  # the records are there...
    for secret in [*PATTERN_SECRETS, PLAIN_PASSWORD, CARD]:
        assert secret.encode() not in everything, secret  # ...the secrets are not
