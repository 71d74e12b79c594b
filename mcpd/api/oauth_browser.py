"""The browser's part of mcpd's OAuth flow: ``/oauth/authorize`` and the login and consent
forms it shows (their HTML is :mod:`mcpd.api.oauth_pages`; the rules,
:mod:`mcpd.services.oauth`).

The browser's sign-in is a login session in a cookie scoped to ``/oauth`` (HttpOnly,
SameSite=Lax), read on these pages only: the API reads bearers from the Authorization
header alone. The login form carries a double-submit CSRF token; the consent form one
derived from the session, so no other site can make a signed-in browser consent. A bad
client or redirect URI is answered by a page, anything else by a redirect to the client.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from authz.tokens import token_kind
from mcpd.api.auth import password_login
from mcpd.api.deps import DbDep, RuntimeDep, authenticate, request_id
from mcpd.api.oauth_pages import HEADERS, consent_page, error_page, login_page
from mcpd.errors import ApiError, Forbidden, NotFound, TooManyRequests, Unauthorized
from mcpd.principal import Principal
from mcpd.runtime import Runtime
from mcpd.services import oauth as service
from mcpd.services.work import Caller

router = APIRouter(tags=["oauth"], include_in_schema=False)

SESSION_COOKIE = "mcpd_oauth"
CSRF_COOKIE = "mcpd_oauth_csrf"
AUTH_FIELDS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "resource",
    "scope",
)


def _address(request: Request) -> str:
    return request.client.host if request.client else "-"


def _redirect(uri: str, params: dict[str, str], status: int = 303) -> RedirectResponse:
    sep = "&" if "?" in uri else "?"
    return RedirectResponse(uri + sep + urlencode(params), status_code=status, headers=HEADERS)


def _error_redirect(
    exc: service.RedirectError, req: service.AuthRequest, issuer: str, status: int
) -> RedirectResponse:
    params = {"error": exc.error, "error_description": exc.description}
    if req.state:
        params["state"] = req.state
    params["iss"] = issuer
    return _redirect(req.redirect_uri, params, status)


def _fields(values: Any) -> dict[str, str]:
    """The authorization request's parameters; one of each (RFC 6749 3.1)."""
    out = {}
    for k in AUTH_FIELDS:
        got = values.getlist(k)
        if len(got) > 1:
            raise service.PageError(f"parameter `{k}` is given more than once")
        if got:
            out[k] = str(got[0])
    return out


def _check(
    db: Session, rt: Runtime, values: dict[str, str], status: int
) -> service.AuthRequest | Response:
    try:
        return service.check_request(db, rt.settings, values)
    except service.PageError as exc:
        return error_page(str(exc))
    except service.BoundRedirectError as exc:
        return _error_redirect(exc, exc.request, rt.settings.issuer, status)


def _posted(db: Session, rt: Runtime, form: Any) -> service.AuthRequest | Response:
    """The authorization request a page's form carries on (login, consent), or the page
    or redirect that answers a bad one."""
    try:
        values = _fields(form)
    except service.PageError as exc:
        return error_page(str(exc))
    return _check(db, rt, values, 303)


def _consent_csrf(session_raw: str) -> str:
    return hashlib.sha256(f"mcpd-oauth-consent:{session_raw}".encode()).hexdigest()


def _browser_user(request: Request, db: Session, rt: Runtime) -> tuple[str, str] | None:
    """The signed-in user of this browser (name, raw session), or None."""
    raw = request.cookies.get(SESSION_COOKIE, "")
    if token_kind(raw) != "session":
        return None
    try:
        principal = authenticate(db, raw)
    except Unauthorized:
        return None
    assert principal.user is not None
    return principal.user, raw


def _login(
    request: Request,
    req: service.AuthRequest,
    error: str | None = None,
    username: str = "",
    status: int = 200,
) -> Response:
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    page = login_page(
        client_name=req.client.client_name or req.client.client_id,
        resource=req.resource,
        fields=req.fields(),
        csrf=csrf,
        error=error,
        username=username,
        status=status,
    )
    secure = request.url.scheme == "https"
    page.set_cookie(
        CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/oauth", secure=secure
    )
    return page


def _consent(
    db: Session,
    rt: Runtime,
    req: service.AuthRequest,
    user: str,
    session_raw: str,
    project: str | None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    projects = service.consent_projects(db, rt, user)
    if project not in projects:
        project = projects[0] if len(projects) == 1 else None
    bindings = service.offered_bindings(rt, user, project) if project else []
    return consent_page(
        user=user,
        client_name=req.client.client_name or req.client.client_id,
        client_id=req.client.client_id,
        redirect_uri=req.redirect_uri,
        resource=req.resource,
        fields=req.fields(),
        csrf=_consent_csrf(session_raw),
        projects=projects,
        project=project,
        bindings=bindings,
        error=error,
        status=status,
    )


def _same_origin(request: Request) -> bool:
    """A form POST must come from mcpd's own pages (when the browser says where from)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return origin == f"{request.url.scheme}://{request.url.netloc}"


@router.get("/oauth/authorize")
async def authorize(request: Request, db: DbDep, rt: RuntimeDep) -> Response:
    def run() -> Response:
        try:
            values = _fields(request.query_params)
        except service.PageError as exc:
            return error_page(str(exc))
        req = _check(db, rt, values, 302)
        if isinstance(req, Response):
            return req
        who = _browser_user(request, db, rt)
        if who is None:
            return _login(request, req)
        return _consent(db, rt, req, who[0], who[1], request.query_params.get("project"))

    return await run_in_threadpool(run)


@router.post("/oauth/login")
async def login(request: Request, db: DbDep, rt: RuntimeDep) -> Response:
    form = await request.form()
    rid = request_id(request)

    def run() -> Response:
        req = _posted(db, rt, form)
        if isinstance(req, Response):
            return req
        username = str(form.get("username", ""))[:255]
        cookie = request.cookies.get(CSRF_COOKIE, "")
        sent = str(form.get("csrf", ""))
        if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
            return _login(request, req, "the form expired; sign in again", username, 400)
        if not _same_origin(request):
            return error_page("this form was sent from another site; nothing was done", 403)
        password = str(form.get("password", ""))[:1024]
        try:
            raw, _, _ = password_login(db, rt, username, password, _address(request), rid, "oauth")
        except (Unauthorized, TooManyRequests) as exc:
            return _login(request, req, exc.detail, username, exc.status)
        back = RedirectResponse(
            "/oauth/authorize?" + urlencode(req.fields()), status_code=303, headers=HEADERS
        )
        back.set_cookie(
            SESSION_COOKIE,
            raw,
            max_age=rt.settings.session_ttl_seconds,
            httponly=True,
            samesite="lax",
            path="/oauth",
            secure=request.url.scheme == "https",
        )
        return back

    return await run_in_threadpool(run)


@router.post("/oauth/consent")
async def consent(request: Request, db: DbDep, rt: RuntimeDep) -> Response:
    form = await request.form()
    rid = request_id(request)

    def run() -> Response:
        req = _posted(db, rt, form)
        if isinstance(req, Response):
            return req
        who = _browser_user(request, db, rt)
        if who is None:
            return _login(request, req, "sign in again", status=401)
        user, session_raw = who
        sent = str(form.get("csrf", ""))
        if not hmac.compare_digest(_consent_csrf(session_raw).encode(), sent.encode()):
            return error_page(
                "the consent form's CSRF token is missing or wrong; nothing was granted", 403
            )
        if not _same_origin(request):
            return error_page("this form was sent from another site; nothing was granted", 403)
        project = str(form.get("project", ""))[:63]
        if form.get("decision") != "allow":
            denied = service.RedirectError("access_denied", "the user denied access")
            return _error_redirect(denied, req, rt.settings.issuer, 303)
        chosen = [str(b) for b in form.getlist("binding")]
        caller = Caller(Principal(f"User:{user}", user=user, session_sha=None), rid)
        try:
            code = service.consent(
                db=db, rt=rt, caller=caller, req=req, project=project, chosen=chosen
            )
        except (Forbidden, NotFound, ApiError) as exc:
            db.rollback()
            return _consent(
                db, rt, req, user, session_raw, project, f"refused: {exc.detail}", exc.status
            )
        params = {"code": code}
        if req.state:
            params["state"] = req.state
        params["iss"] = rt.settings.issuer
        return _redirect(req.redirect_uri, params)

    return await run_in_threadpool(run)


__all__ = ["CSRF_COOKIE", "SESSION_COOKIE", "router"]
