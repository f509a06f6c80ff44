"""The approvals page (server-rendered)."""

from __future__ import annotations

from fastapi import FastAPI


def add_page_routes(app: FastAPI) -> None:
    """Add `/approvals` and its forms to `app`."""
