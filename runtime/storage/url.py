"""Store URLs: `sqlite:///path/to/file.db` or `postgresql://user:pass@host:port/db`."""

from __future__ import annotations

import dataclasses
import urllib.parse
from pathlib import Path

__all__ = ["StoreURL"]

_POSTGRES_SCHEMES = ("postgresql", "postgres")


@dataclasses.dataclass(frozen=True, slots=True)
class StoreURL:
    """A parsed store URL.

    Attributes:
        kind: `sqlite` or `postgresql`.
        raw: The URL as given (may hold a password: never log it; use `redacted`).
        path: For SQLite, the database file.
    """

    kind: str
    raw: str
    path: Path | None = None

    @classmethod
    def parse(cls, url: str) -> StoreURL:
        """Read `sqlite:///relative.db`, `sqlite:////abs/path.db` or `postgresql://…`.

        Raises:
            ValueError: Another scheme, or a SQLite URL without a path.
        """
        scheme, sep, rest = url.partition("://")
        scheme = scheme.lower()
        if not sep:
            raise ValueError(
                f"store URL {_redact(url)!r} has no scheme: use sqlite:///PATH or "
                "postgresql://USER@HOST:PORT/DB"
            )
        if scheme == "sqlite":
            # sqlite:///x.db → x.db (relative), sqlite:////tmp/x.db → /tmp/x.db
            path = rest[1:] if rest.startswith("/") else rest
            if not path:
                raise ValueError("a sqlite store URL needs a file: sqlite:///PATH")
            return cls("sqlite", url, Path(path))
        if scheme in _POSTGRES_SCHEMES:
            return cls("postgresql", url)
        raise ValueError(
            f"unknown store scheme {scheme!r} in {_redact(url)!r}: use sqlite:///PATH or "
            "postgresql://USER@HOST:PORT/DB"
        )

    @property
    def redacted(self) -> str:
        """The URL without its password, for messages and logs."""
        return _redact(self.raw)

    def __str__(self) -> str:
        return self.redacted


def _redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
