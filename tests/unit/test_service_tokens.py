"""Tokens file parsing and checks; store URLs; the Prometheus text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runtime.service.metrics import Metrics
from runtime.service.tokens import TokenError, Tokens
from runtime.storage.url import StoreURL


def _tokens(tmp_path: Path, text: str) -> Tokens:
    path = tmp_path / "tokens.yaml"
    path.write_text(text)
    return Tokens.load(path)


def test_a_token_maps_to_its_tenant_until_it_expires(tmp_path: Path) -> None:
    tokens = _tokens(
        tmp_path,
        "tokens:\n"
        "  - {token: acme-secret-1, tenant: acme, name: alice}\n"
        '  - {token: globex-secret, tenant: globex, expires: "2030-01-01T00:00:00Z"}\n',
    )
    found = tokens.check("acme-secret-1")
    assert found is not None and (found.tenant, found.name) == ("acme", "alice")
    assert tokens.check("acme-secret-2") is None and tokens.check("") is None
    assert tokens.check("acme-secret-1 ") is None  # exact match only
    expires = 1893456000.0  # 2030-01-01
    assert tokens.check("globex-secret", now=expires - 1) is not None
    assert tokens.check("globex-secret", now=expires) is None
    assert tokens.tenants == {"acme", "globex"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("tokens: []\n", "expected `tokens:"),
        ("tokens:\n  - {token: short, tenant: a}\n", "8+ characters"),
        ("tokens:\n  - {token: long-enough-1}\n", "tenant must be"),
        ("tokens:\n  - {token: long-enough-1, tenant: a, expires: soon}\n", "ISO 8601"),
        ("tokens: [\n", "cannot read"),
    ],
)
def test_a_bad_tokens_file_says_what_to_fix(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(TokenError, match=re.escape(problem)):
        _tokens(tmp_path, text)


def test_store_urls_parse_and_hide_their_password() -> None:
    relative = StoreURL.parse("sqlite:///state.db")
    assert relative.kind == "sqlite" and str(relative.path) == "state.db"
    assert str(StoreURL.parse("sqlite:////tmp/x.db").path) == "/tmp/x.db"
    pg = StoreURL.parse("postgresql://agentrt:hunter2@db:5432/agentrt")
    assert pg.kind == "postgresql" and "hunter2" not in pg.redacted and "***" in str(pg)
    for bad in ("mysql://x", "state.db", "sqlite://"):
        with pytest.raises(ValueError, match="sqlite:///PATH"):
            StoreURL.parse(bad)


def test_metrics_render_counters_and_cumulative_histograms() -> None:
    metrics = Metrics()
    metrics.run_finished("completed", 0.2)
    metrics.run_finished("pending_approval", 0.004)
    metrics.call_finished('we"ird', "ok", 0.03)
    text = metrics.render()
    assert 'agentrt_runs_total{status="completed"} 1' in text
    assert 'agentrt_calls_total{tool="we\\"ird",status="ok"} 1' in text
    assert 'agentrt_run_duration_seconds_bucket{le="0.005"} 1' in text
    assert 'agentrt_run_duration_seconds_bucket{le="0.25"} 2' in text
    assert 'agentrt_run_duration_seconds_bucket{le="+Inf"} 2' in text
    assert "agentrt_run_duration_seconds_count 2" in text
