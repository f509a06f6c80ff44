"""The state replicas share, opened from one URL: approvals, paused runs, rate-limit windows.

`sqlite:///PATH` keeps everything in one SQLite file (the embedded default:
one host, any number of processes); `postgresql://…` keeps it in PostgreSQL,
so several `agentrt serve` replicas see one set of approvals and one budget
per rate limit. The URL comes from `--store` or `$AGENTRT_STORE`::

    state = open_state_store("postgresql://agentrt@db:5432/agentrt")
    stack = build_stack("tools", policy="policies/", store=state)
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from runtime.approvals.store import ApprovalStore
from runtime.policy.ratelimit import (
    PostgresRateLimitStore,
    RateLimitStore,
    SQLiteRateLimitStore,
)
from runtime.storage.sql import Database, open_database
from runtime.storage.url import StoreURL

__all__ = ["STORE_ENV", "StateStore", "open_state_store", "store_url_from_env"]

#: Environment variable naming the store URL when `--store` is not given.
STORE_ENV = "AGENTRT_STORE"


@dataclasses.dataclass
class StateStore:
    """The opened stores; `close` releases them (and the shared connection pool)."""

    url: StoreURL
    database: Database
    approvals: ApprovalStore
    rate_limits: RateLimitStore

    def close(self) -> None:
        """Close the stores and their database."""
        try:
            self.approvals.close()
            self.rate_limits.close()
        finally:
            self.database.close()


def open_state_store(url: str | StoreURL, **database_options: Any) -> StateStore:
    """Open (and migrate) every shared store at `url`.

    Args:
        url: `sqlite:///PATH` or `postgresql://USER[:PASSWORD]@HOST:PORT/DB`.
        database_options: For PostgreSQL: `min_size`, `max_size`, `timeout_s`.

    Raises:
        ValueError: Not a store URL.
        StoreUnavailable: PostgreSQL cannot be reached.
        SchemaTooNew: The database was migrated by a newer agentrt.
    """
    parsed = url if isinstance(url, StoreURL) else StoreURL.parse(url)
    database = open_database(parsed, **database_options)
    try:
        approvals = ApprovalStore(database)
        limits: RateLimitStore
        if parsed.kind == "postgresql":
            limits = PostgresRateLimitStore(database)
        else:
            assert parsed.path is not None
            limits = SQLiteRateLimitStore(parsed.path)
    except BaseException:
        database.close()
        raise
    return StateStore(parsed, database, approvals, limits)


def store_url_from_env() -> str | None:
    """`$AGENTRT_STORE`, or None when unset or empty."""
    return os.environ.get(STORE_ENV) or None
