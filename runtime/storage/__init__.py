"""Where shared state lives: SQL databases behind one small interface, chosen by URL.

- `url`: `StoreURL` (`sqlite:///path`, `postgresql://…`), parsed and redacted;
- `sql`: `Database` (transactions, dialect-neutral placeholders) over SQLite
  or PostgreSQL (psycopg 3, a connection pool), and the errors it raises;
- `migrations`: versioned schemas per component, refused when newer than the code.

The stores themselves (approvals, rate limits, service runs) live with their
features and take a `Database`; `runtime.state_store` opens them all from one URL.
"""

from __future__ import annotations

from runtime.storage.sql import (
    Database,
    SchemaTooNew,
    Session,
    StoreError,
    StoreUnavailable,
)
from runtime.storage.url import StoreURL

__all__ = [
    "Database",
    "SchemaTooNew",
    "Session",
    "StoreError",
    "StoreURL",
    "StoreUnavailable",
]
