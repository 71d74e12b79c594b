"""mcpd's OAuth 2.1 authorization server endpoints for clients and resources (the rules are
in :mod:`mcpd.services.oauth` and its siblings).

``/.well-known/oauth-authorization-server`` (RFC 8414), ``/oauth/register`` (RFC 7591),
``/oauth/token``, ``/oauth/revoke`` (RFC 7009) and ``/oauth/introspect`` (RFC 7662): JSON
over form or JSON bodies, never cached; and ``/api/v1/oauthgrants``, where a user lists and
revokes its own grants. The browser's part of the flow, ``/oauth/authorize`` with its login
and consent forms, is :mod:`mcpd.api.oauth_browser`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from authz.tokens import token_kind
from mcpd import audit
from mcpd.api.deps import CallerDep, DbDep, PrincipalDep, RuntimeDep, _caller, request_id
from mcpd.errors import Forbidden, OAuthError, Unauthorized
from mcpd.principal import Principal
from mcpd.runtime import Runtime
from mcpd.schemas.oauth import ClientIn, GrantOut
from mcpd.services import oauth as service
from mcpd.services import oauth_grants, oauth_tokens
from mcpd.services.oauth_clients import client_out, register_client

router = APIRouter(tags=["oauth"], include_in_schema=False)
grants = APIRouter(prefix="/api/v1", tags=["oauthgrants"])

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
