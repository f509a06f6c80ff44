"""The approvals page: server-rendered HTML for a tenant's approvers, no JavaScript needed.

- `GET /login`, `POST /login`: the approver pastes a token; it is kept in an
  HttpOnly, SameSite=Strict cookie (Secure behind HTTPS) and never shown again.
- `GET /approvals`: the tenant's pending calls (tool, arguments redacted as
  the policy says, rule, reason, age), each with approve, deny, and an
  arguments editor showing the tool's JSON Schema.
- `POST /approvals/{id}/approve|deny`: forms carrying a CSRF token derived
  from the session (an HMAC keyed by the session token: every replica can
  check it, and a page of another origin cannot know it); the request's
  Origin, when sent, must be this host.
- `GET /approvals/audit`: this replica's audit records of the tenant, queried
  by tool, status and time, and whether the hash chain verifies.

A redacted value shown in the editor (`{"redacted": "path"}`) is put back as
the stored value when submitted unchanged, so editing other fields never
needs the secret.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import urllib.parse
from typing import Any

import jinja2
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from runtime.service.app_state import ServiceApp, audit_view
from runtime.service.runner import ServiceError
from runtime.service.tokens import Identity

__all__ = ["add_page_routes"]

COOKIE = "agentrt_session"

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("runtime.service", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def _csrf(token: str) -> str:
    return hmac.new(token.encode(), b"agentrt-approvals-csrf", hashlib.sha256).hexdigest()


def _render(name: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    html = _ENV.get_template(name).render(**values)
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "form-action 'self'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60}m"


def _restore_redacted(edited: Any, shown: Any, stored: Any) -> Any:
    """Put stored values back where the editor still holds the redaction marker it showed."""
    if isinstance(edited, dict) and isinstance(shown, dict) and isinstance(stored, dict):
        if edited == shown and set(edited) == {"redacted"}:
            return stored
        return {
            key: _restore_redacted(value, shown.get(key), stored.get(key))
            if key in stored
            else value
            for key, value in edited.items()
        }
    if isinstance(edited, dict) and set(edited) == {"redacted"} and edited == shown:
        return stored
    return edited


def add_page_routes(app: FastAPI) -> None:
    """Add the login form, the approvals page, its forms and the audit view to `app`."""

    def state(request: Request) -> ServiceApp:
        found: ServiceApp = request.app.state.agentrt
        return found

    def session(request: Request) -> tuple[Identity, str] | None:
        token = request.cookies.get(COOKIE, "")
        found = state(request).tokens.check(token) if token else None
        return (found, token) if found is not None else None

    def check_post(request: Request, token: str, csrf: str) -> None:
        if not hmac.compare_digest(csrf.encode(), _csrf(token).encode()):
            raise ServiceError("the form is stale or forged (CSRF check failed)", type="csrf")
        origin = request.headers.get("origin")
        if origin and origin != "null":
            host = urllib.parse.urlsplit(origin).netloc
            if host != request.headers.get("host"):
                raise ServiceError("cross-origin form refused", type="csrf")

    def to_login() -> RedirectResponse:
        return RedirectResponse("/login", status_code=303)

    @app.get("/login", include_in_schema=False)
    async def login_form(request: Request) -> Response:
        return _render("login.html", error=None)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request, token: str = Form("")) -> Response:
        if state(request).tokens.check(token.strip()) is None:
            return _render("login.html", 401, error="That token is not valid (or has expired).")
        response = RedirectResponse("/approvals", status_code=303)
        response.set_cookie(
            COOKIE,
            token.strip(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request, csrf: str = Form("")) -> Response:
        found = session(request)
        if found is not None:
            check_post(request, found[1], csrf)
        response = to_login()
        response.delete_cookie(COOKIE, path="/")
        return response

    async def page(
        request: Request, identity: Identity, token: str, *, message: str | None, error: str | None
    ) -> Response:
        st = state(request)
        records = await st.service.list_approvals(identity, "pending")
        now = dt.datetime.now(dt.UTC).timestamp()
        calls = []
        for record in records:
            view = st.approval_view(record, now)
            tool = st.service.stack.registry.get(record.tool)
            calls.append(
                {
                    **view,
                    "age": _age(view["age_s"]),
                    "arguments_json": json.dumps(view["arguments"], indent=2, ensure_ascii=False),
                    "schema_json": json.dumps(tool.parameters, indent=2) if tool else "{}",
                }
            )
        return _render(
            "approvals.html",
            tenant=identity.tenant,
            calls=calls,
            csrf=_csrf(token),
            message=message,
            error=error,
        )

    @app.get("/approvals", include_in_schema=False)
    async def approvals(request: Request) -> Response:
        found = session(request)
        if found is None:
            return to_login()
        message = request.query_params.get("message")
        return await page(request, found[0], found[1], message=message, error=None)

    async def decide(
        request: Request, approval_id: str, action: str, csrf: str, arguments: str, reason: str
    ) -> Response:
        found = session(request)
        if found is None:
            return to_login()
        identity, token = found
        st = state(request)
        try:
            check_post(request, token, csrf)
            if action == "approve":
                edited = None
                if arguments.strip():
                    try:
                        edited = json.loads(arguments)
                    except ValueError as exc:
                        raise ServiceError(f"the arguments are not JSON: {exc}") from None
                    if not isinstance(edited, dict):
                        raise ServiceError("the arguments must be a JSON object")
                    record = await st.service.get_approval(identity, approval_id)
                    shown = st.redact(record.arguments)
                    edited = _restore_redacted(edited, shown, record.arguments)
                    if edited == record.arguments:
                        edited = None  # unchanged: approve as proposed
                out = await st.service.approve(identity, approval_id, arguments=edited, wait=True)
            else:
                out = await st.service.deny(identity, approval_id, reason=reason or None, wait=True)
        except ServiceError as exc:
            code = exc.status_code if exc.type != "csrf" else 403
            response = await page(request, identity, token, message=None, error=str(exc))
            response.status_code = code
            return response
        run = out.get("run") or {}
        verb = "approved" if action == "approve" else "denied"
        message = f"{out['approval']['tool']} {verb}; run {run.get('run_id', '?')}: {run.get('status', '?')}"
        return RedirectResponse(
            "/approvals?" + urllib.parse.urlencode({"message": message}), status_code=303
        )

    @app.post("/approvals/{approval_id}/approve", include_in_schema=False)
    async def approve(
        request: Request, approval_id: str, csrf: str = Form(""), arguments: str = Form("")
    ) -> Response:
        return await decide(request, approval_id, "approve", csrf, arguments, "")

    @app.post("/approvals/{approval_id}/deny", include_in_schema=False)
    async def deny(
        request: Request, approval_id: str, csrf: str = Form(""), reason: str = Form("")
    ) -> Response:
        return await decide(request, approval_id, "deny", csrf, "", reason)

    @app.get("/approvals/audit", include_in_schema=False)
    async def audit(request: Request) -> Response:
        found = session(request)
        if found is None:
            return to_login()
        identity, token = found
        query = request.query_params
        filters = {k: query.get(k, "") for k in ("tool", "status", "since", "until")}
        error = None
        try:
            result = await asyncio.to_thread(
                audit_view,
                state(request).audit_log,
                identity.tenant,
                filters["tool"] or None,
                filters["status"] or None,
                filters["since"] or None,
                filters["until"] or None,
                200,
            )
        except ServiceError as exc:
            result, error = {"records": [], "verified": None}, str(exc)
        rows = [
            {
                "ts": r.get("ts", ""),
                "event": r.get("event", ""),
                "tool": r.get("fields", {}).get("gen_ai.tool.name", ""),
                "status": r.get("fields", {}).get("agentrt.status", ""),
                "decision": r.get("fields", {}).get("agentrt.decision", ""),
                "run": r.get("fields", {}).get("agentrt.run_id", ""),
            }
            for r in result["records"]
        ]
        return _render(
            "audit.html",
            tenant=identity.tenant,
            rows=rows,
            filters=filters,
            verified=result.get("verified"),
            error=error,
            csrf=_csrf(token),
        )
