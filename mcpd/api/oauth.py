"""mcpd's OAuth 2.1 authorization server endpoints (services/oauth*.py have the rules).

``/.well-known/oauth-authorization-server`` (RFC 8414), ``/oauth/register`` (RFC 7591),
``/oauth/authorize`` with its login and consent forms, ``/oauth/token``, ``/oauth/revoke``
(RFC 7009) and ``/oauth/introspect`` (RFC 7662); and ``/api/v1/oauthgrants``, where a user
lists and revokes its own grants.

The browser's sign-in is a login session in a cookie scoped to ``/oauth`` (HttpOnly,
SameSite=Lax), read on these pages only: the API reads bearers from the Authorization
header alone. The login form carries a double-submit CSRF token; the consent form one
derived from the session, so no other site can make a signed-in browser consent.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from authz.tokens import token_kind
from mcpd import audit
from mcpd.api.auth import password_login
from mcpd.api.deps import (
    CallerDep,
    DbDep,
    PrincipalDep,
    RuntimeDep,
    _caller,
    authenticate,
    request_id,
)
from mcpd.api.oauth_pages import HEADERS, consent_page, error_page, login_page
from mcpd.errors import ApiError, Forbidden, NotFound, OAuthError, TooManyRequests, Unauthorized
from mcpd.principal import Principal
from mcpd.runtime import Runtime
from mcpd.schemas.oauth import ClientIn, GrantOut
from mcpd.services import oauth as service
from mcpd.services import oauth_grants, oauth_tokens
from mcpd.services.oauth_clients import client_out, register_client
from mcpd.services.work import Caller

router = APIRouter(tags=["oauth"], include_in_schema=False)
grants = APIRouter(prefix="/api/v1", tags=["oauthgrants"])

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
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error(exc: OAuthError) -> JSONResponse:
    return JSONResponse(
        {"error": exc.error, "error_description": exc.description},
        status_code=exc.status,
        headers=_NO_STORE,
    )


def _address(request: Request) -> str:
    return request.client.host if request.client else "-"


def _rid(request: Request) -> str:
    return request_id(request)


# -- metadata ------------------------------------------------------------------------------


@router.get("/.well-known/oauth-authorization-server")
def metadata(rt: RuntimeDep) -> JSONResponse:
    issuer = rt.settings.issuer
    return JSONResponse(
        {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/oauth/authorize",
            "token_endpoint": f"{issuer}/oauth/token",
            "registration_endpoint": f"{issuer}/oauth/register",
            "revocation_endpoint": f"{issuer}/oauth/revoke",
            "introspection_endpoint": f"{issuer}/oauth/introspect",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "introspection_endpoint_auth_methods_supported": ["bearer"],
            "scopes_supported": list(service.SCOPES),
            "authorization_response_iss_parameter_supported": True,
            "service_documentation": "https://github.com/mcpctl/mcpctl#oauth",
        }
    )


# -- registration --------------------------------------------------------------------------


async def _bearer_principal(request: Request, rt: Runtime) -> Principal | None:
    header = request.headers.get("authorization", "")
    scheme, _, raw = header.partition(" ")
    if not header:
        return None
    if scheme.lower() != "bearer" or token_kind(raw.strip()) is None:
        raise OAuthError("invalid_token", "send `Authorization: Bearer <token>`", status=401)
    try:
        return await _caller(rt, raw.strip())
    except Unauthorized:
        raise OAuthError("invalid_token", "invalid or expired credentials", status=401) from None


@router.post("/oauth/register", status_code=201)
async def register(request: Request, db: DbDep, rt: RuntimeDep) -> JSONResponse:
    """Dynamic client registration, if policy lets the caller (anonymous callers ask as
    ``Group:system:unauthenticated``) do ``oauth-register``; rate-limited per address."""
    address = _address(request)
    wait = rt.registration_limiter.blocked(address)
    if wait:
        raise OAuthError(
            "temporarily_unavailable",
            f"too many registrations; try again in {int(wait) + 1} s",
            status=429,
        )
    rt.registration_limiter.hit(address)
    try:
        body = ClientIn.model_validate_json(await request.body())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise OAuthError("invalid_client_metadata", f"{where}: {first['msg']}") from None
    who = await _bearer_principal(request, rt)
    subjects = [service.ANONYMOUS] + ([who.subject] if who else [])
    decisions = [rt.authorizer.decide(s, "", "*", "*", service.REGISTER) for s in subjects]
    principal = who or Principal(service.ANONYMOUS)
    rid = _rid(request)

    def run() -> dict[str, Any]:
        if not any(d.allowed for d in decisions):
            audit.record(
                db,
                principal,
                action=service.REGISTER,
                kind="oauthclients",
                outcome="deny",
                request_id=rid,
                detail={"reason": decisions[-1].reason, "address": address},
            )
            db.commit()
            raise OAuthError(
                "invalid_token",
                "client registration needs the oauth-register operation; send a bearer "
                "that holds it (an initial access token)",
                status=401,
            )
        client = register_client(
            db=db,
            spec=body,
            max_clients=rt.settings.oauth_max_clients,
            unused_ttl=rt.settings.oauth_client_unused_ttl,
        )
        audit.record(
            db,
            principal,
            action=service.REGISTER,
            kind="oauthclients",
            name=client.client_id,
            request_id=rid,
            detail={"clientName": client.client_name, "redirectUris": client.redirect_uris},
        )
        db.commit()
        return client_out(client)

    return JSONResponse(await run_in_threadpool(run), status_code=201, headers=_NO_STORE)


# -- the browser: authorize, login, consent ------------------------------------------------


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
    rid = _rid(request)

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
    rid = _rid(request)

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


# -- token, revocation, introspection ------------------------------------------------------


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    out = {}
    for k in form:
        got = form.getlist(k)
        if len(got) != 1:
            raise OAuthError("invalid_request", f"parameter `{k}` is given more than once")
        out[k] = str(got[0])[:4096]
    return out


@router.post("/oauth/token")
async def token(request: Request, db: DbDep, rt: RuntimeDep) -> JSONResponse:
    form = await _form(request)
    rid = _rid(request)

    def run() -> dict[str, Any]:
        try:
            return oauth_tokens.token_endpoint(db=db, rt=rt, form=form, request_id=rid)
        except OAuthError as exc:  # a refused exchange or refresh is a deny like any other
            db.rollback()
            client = form.get("client_id", "")[:64]
            audit.record(
                db,
                Principal(f"OAuthClient:{client}"),
                action="token",
                kind="oauthclients",
                name=client,
                outcome="deny",
                request_id=rid,
                detail={
                    "grantType": form.get("grant_type", "")[:64],
                    "error": exc.error,
                    "reason": exc.description,
                    "address": _address(request),
                },
            )
            db.commit()
            raise

    return JSONResponse(await run_in_threadpool(run), headers=_NO_STORE)


@router.post("/oauth/revoke")
async def revoke(request: Request, db: DbDep, rt: RuntimeDep) -> Response:
    form = await _form(request)
    rid = _rid(request)
    await run_in_threadpool(lambda: oauth_tokens.revoke(db=db, rt=rt, form=form, request_id=rid))
    return Response(status_code=200, headers=_NO_STORE)


@router.post("/oauth/introspect")
async def introspect(request: Request, db: DbDep, rt: RuntimeDep) -> JSONResponse:
    """For protected resources (mcplocal): the caller needs the ``proxy`` operation."""
    who = await _bearer_principal(request, rt)
    if who is None:
        raise OAuthError("invalid_token", "introspection needs a bearer (mcplocal's own)", 401)
    if not rt.authorizer.decide(who.subject, "", "*", "*", "proxy").allowed:
        raise OAuthError("insufficient_scope", "introspection needs the proxy operation", 403)
    form = await _form(request)
    body = await run_in_threadpool(
        lambda: oauth_grants.introspect(db=db, rt=rt, raw=form.get("token", ""))
    )
    return JSONResponse(body, headers=_NO_STORE)


# -- a user's own grants (mcpctl get oauthgrants / delete oauthgrant) ----------------------


@grants.get("/oauthgrants")
def list_grants(principal: PrincipalDep, db: DbDep) -> dict[str, Any]:
    """The OAuth grants of the calling user (each acts as the McpToken it names)."""
    if principal.user is None:
        raise Forbidden("only a user has OAuth grants")
    items = oauth_grants.grants_of(db, principal.user)
    return {"items": [GrantOut(**i).model_dump(by_alias=True, mode="json") for i in items]}


@grants.delete("/oauthgrants/{name}", status_code=204)
def delete_grant(name: str, caller: CallerDep, db: DbDep, rt: RuntimeDep) -> Response:
    """Revoke one of the caller's grants at once (its McpToken, so every token of it)."""
    oauth_grants.revoke_own_grant(db=db, rt=rt, caller=caller, name=name)
    return Response(status_code=204)


__all__ = ["grants", "oauth_error", "router"]
