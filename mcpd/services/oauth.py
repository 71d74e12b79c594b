"""mcpd as an OAuth 2.1 authorization server for MCP clients (issue 19).

The flow: an authorization request is checked (:func:`check_request`), the user consents
for one project (:func:`consent`: the ``oauth-consent`` operation there, and bindings at
most the user's own - the creator ceiling), the code is exchanged once with its PKCE
verifier (:func:`exchange_code`). What the exchange makes is an **McpToken** of the user
in that project (the grant), so revocation, audit, ``get mcptokens``, the continuous
ceiling and the policy stream apply to it unchanged. Its access tokens act as that
McpToken, only at the resource (RFC 8707) they were issued for; its refresh tokens rotate,
and one coming back after rotation revokes the grant (every token of it).
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from authlib.oauth2.rfc7636 import create_s256_code_challenge as s256
from authlib.oauth2.rfc7636.challenge import CODE_CHALLENGE_PATTERN, CODE_VERIFIER_PATTERN
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from authz import RoleBinding
from authz.tokens import OAUTH_ACCESS_PREFIX, generate_oauth_token, token_kind, token_sha256
from mcpd.errors import BadRequest, Forbidden, NotFound, OAuthError
from mcpd.models import (
    McpToken,
    OAuthClient,
    OAuthCode,
    OAuthGrant,
    OAuthToken,
    Project,
    User,
    utcnow,
)
from mcpd.principal import Principal
from mcpd.runtime import Runtime, aware
from mcpd.services.mcptokens import bindings_of, issue_token, mark_revoked, name_free
from mcpd.services.oauth_clients import find_client, redirect_matches
from mcpd.services.policy import parse_bindings
from mcpd.services.work import Caller, Work, unit_of_work
from mcpd.settings import Settings

SCOPES = ("mcp",)
CONSENT = "oauth-consent"  # the operation (policies/operations.csv)
REGISTER = "oauth-register"
ANONYMOUS = "Group:system:unauthenticated"
_SERVER_ENDPOINT = re.compile(r"^/api/v1/servers/[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?/mcp$")


class PageError(Exception):
    """The authorization request cannot be answered by a redirect (unknown client, a
    redirect URI it did not register): the page shows this instead (RFC 6749 4.1.2.1)."""


class RedirectError(Exception):
    """An error the client hears at its (checked) redirect URI: ``error``, ``state``."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class AuthRequest:
    """A checked authorization request (the fields the pages carry along)."""

    client: OAuthClient
    redirect_uri: str
    state: str
    code_challenge: str
    resource: str
    scope: str

    def fields(self) -> dict[str, str]:
        return {
            "response_type": "code",
            "client_id": self.client.client_id,
            "redirect_uri": self.redirect_uri,
            "state": self.state,
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
            "resource": self.resource,
            "scope": self.scope,
        }


def resource_allowed(settings: Settings, resource: str) -> bool:
    """A resource mcpd issues tokens for: a configured mcplocal, or an MCP endpoint of its own."""
    if resource in settings.oauth_resource_list():
        return True
    issuer = settings.issuer
    return resource.startswith(issuer + "/") and bool(
        _SERVER_ENDPOINT.match(resource[len(issuer) :])
    )


def _scope(requested: str) -> str:
    wanted = requested.split() or list(SCOPES)
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown:
        raise RedirectError(
            "invalid_scope", f"unknown scope `{unknown[0][:64]}`; scopes: {' '.join(SCOPES)}"
        )
    return " ".join(dict.fromkeys(wanted))


def check_request(db: Session, settings: Settings, q: Mapping[str, str]) -> AuthRequest:
    """Check an authorization request. A bad client or redirect URI raises PageError
    (never a redirect); anything else RedirectError, to be sent to that redirect URI."""
    client = find_client(db, q.get("client_id", ""))
    if client is None:
        raise PageError("unknown client: it must register first (client_id is not known here)")
    redirect_uri = q.get("redirect_uri", "")
    if not redirect_uri and len(client.redirect_uris) == 1:
        redirect_uri = client.redirect_uris[0]
    if not redirect_matches(client.redirect_uris, redirect_uri):
        raise PageError(
            f"the redirect URI `{redirect_uri[:200]}` is not one this client registered; "
            "nothing was sent to it"
        )
    state = q.get("state", "")
    if len(state) > 1000:
        raise PageError("state is longer than 1000 characters")
    req = AuthRequest(client, redirect_uri, state, "", "", "")
    if q.get("response_type") != "code":
        raise BoundRedirectError(req, "unsupported_response_type", "response_type must be `code`")
    method = q.get("code_challenge_method", "")
    challenge = q.get("code_challenge", "")
    if not challenge:
        raise BoundRedirectError(
            req, "invalid_request", "PKCE is required: send code_challenge (S256)"
        )
    if method != "S256":
        raise BoundRedirectError(
            req, "invalid_request", "code_challenge_method must be S256 (plain is refused)"
        )
    if not CODE_CHALLENGE_PATTERN.match(challenge):
        raise BoundRedirectError(req, "invalid_request", "code_challenge is malformed")
    resource = q.get("resource", "")
    if not resource:
        raise BoundRedirectError(
            req, "invalid_target", "resource (RFC 8707) is required: the MCP server URL"
        )
    if not resource_allowed(settings, resource):
        raise BoundRedirectError(
            req, "invalid_target", f"mcpd issues no tokens for `{resource[:200]}`"
        )
    try:
        scope = _scope(q.get("scope", ""))
    except RedirectError as exc:
        raise BoundRedirectError(req, exc.error, exc.description) from None
    return AuthRequest(client, redirect_uri, state, challenge, resource, scope)


class BoundRedirectError(RedirectError):
    """A RedirectError that knows its (checked) request."""

    def __init__(self, req: AuthRequest, error: str, description: str) -> None:
        super().__init__(error, description)
        self.request = req


# -- consent -------------------------------------------------------------------------------


def consent_projects(db: Session, rt: Runtime, user: str) -> list[str]:
    """The projects ``user`` may consent for (the ``oauth-consent`` operation there)."""
    names = db.scalars(select(Project.name).order_by(Project.name))
    subject = f"User:{user}"
    return [p for p in names if rt.authorizer.decide(subject, p, "projects", p, CONSENT).allowed]


def offered_bindings(rt: Runtime, user: str, project: str) -> list[RoleBinding]:
    """What a client may be given in ``project``: at most the user's own bindings there
    (without the OAuth operations themselves: a client never registers or consents)."""
    own = rt.authorizer.clone_bindings(f"User:{user}", project)
    return [b for b in own if str(b).split(",")[0] not in _NOT_DELEGATED]


_NOT_DELEGATED = (f"action:{CONSENT}", f"action:{REGISTER}")


def consent(
    *,
    db: Session,
    rt: Runtime,
    caller: Caller,
    req: AuthRequest,
    project: str,
    chosen: list[str],
) -> str:
    """The user consents: check, then store a one-use code. Returns the raw code.

    Refused (Forbidden, audited) without ``oauth-consent`` in ``project``, or when a chosen
    binding is not one the user holds there (the creator ceiling)."""
    user = caller.principal.user
    assert user is not None
    with unit_of_work(
        db=db,
        rt=rt,
        caller=caller,
        kind="projects",
        action=CONSENT,
        name=project,
        project=project,
        per_object=True,  # asked below, so that a refusal is audited where it is decided
    ) as work:
        try:
            work.require("projects", CONSENT, project, project)
            bindings = _scoped(work, chosen, project)
            work.ceiling(bindings)
        except Forbidden as exc:
            work.refuse(exc, kind="projects", action=CONSENT, name=project, project=project)
        if not db.scalars(select(Project.id).where(Project.name == project)).first():
            raise NotFound(f"project `{project}` not found")
        raw = generate_oauth_token("code")
        user_id = db.scalar(select(User.id).where(User.name == user))
        assert user_id is not None
        db.add(
            OAuthCode(
                code_sha=token_sha256(raw),
                client_id=req.client.id,
                user_id=user_id,
                project=project,
                role_bindings=[str(b) for b in bindings],
                redirect_uri=req.redirect_uri,
                code_challenge=req.code_challenge,
                resource=req.resource,
                scope=req.scope,
                expires_at=utcnow() + timedelta(seconds=rt.settings.oauth_code_ttl),
            )
        )
        work.audit(
            detail={
                "client": req.client.client_id,
                "clientName": req.client.client_name,
                "resource": req.resource,
                "bindings": [str(b) for b in bindings],
            }
        )
    return raw


def _scoped(work: Work, chosen: list[str], project: str) -> list[RoleBinding]:
    if len(chosen) > 100:
        raise BadRequest("at most 100 bindings")
    out = []
    for b in parse_bindings(work.rt.authorizer, chosen):
        if b.project not in ("*", project):
            raise BadRequest(f"`{b}` is for project {b.project}, not {project}")
        out.append(b.in_project(project))
    return out


# -- the token endpoint --------------------------------------------------------------------


def _find(db: Session, raw: str, kind: Literal["access", "refresh"]) -> OAuthToken | None:
    wanted = "oauth" if kind == "access" else "refresh"
    if token_kind(raw) != wanted:
        return None
    return db.scalars(
        select(OAuthToken).where(OAuthToken.token_sha == token_sha256(raw), OAuthToken.kind == kind)
    ).first()


def _tokens(db: Session, settings: Settings, grant: OAuthGrant) -> dict[str, Any]:
    """A new access and refresh token of ``grant`` (in the caller's transaction)."""
    now = utcnow()
    access, refresh = generate_oauth_token("oauth"), generate_oauth_token("refresh")
    ttl = settings.oauth_access_token_ttl
    db.add(
        OAuthToken(
            token_sha=token_sha256(access),
            kind="access",
            grant_id=grant.id,
            expires_at=now + timedelta(seconds=ttl),
        )
    )
    db.add(
        OAuthToken(
            token_sha=token_sha256(refresh),
            kind="refresh",
            grant_id=grant.id,
            expires_at=now + timedelta(seconds=settings.oauth_refresh_token_ttl),
        )
    )
    # expired tokens and codes are of no use to anyone: gone as new ones come
    quiet = {"synchronize_session": False}
    db.execute(  # (a rotated refresh token is kept until it expires: reuse is detected)
        delete(OAuthToken).where(OAuthToken.expires_at < now), execution_options=quiet
    )
    db.execute(
        delete(OAuthCode).where(OAuthCode.expires_at < now - timedelta(hours=1)),
        execution_options=quiet,
    )
    return {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl,
        "refresh_token": refresh,
        "scope": grant.scope,
    }


def _client(db: Session, form: Mapping[str, str]) -> OAuthClient:
    client = find_client(db, form.get("client_id", ""))
    if client is None:
        raise OAuthError("invalid_client", "unknown client_id", status=401)
    return client


def _verifier_ok(verifier: str, challenge: str) -> bool:
    if not CODE_VERIFIER_PATTERN.match(verifier):
        return False
    return hmac.compare_digest(s256(verifier).encode(), challenge.encode())


def exchange_code(
    *, db: Session, rt: Runtime, form: Mapping[str, str], request_id: str
) -> dict[str, Any]:
    """``grant_type=authorization_code``: the code, once, with its PKCE verifier."""
    client = _client(db, form)
    raw = form.get("code", "")
    code = None
    if token_kind(raw) == "code":
        code = db.scalars(select(OAuthCode).where(OAuthCode.code_sha == token_sha256(raw))).first()
    if code is None or code.client_id != client.id:
        raise OAuthError("invalid_grant", "unknown authorization code")
    if code.used_at is not None:
        # a code used twice: whatever the first use got is revoked (RFC 6749 4.1.2)
        if code.grant_id is not None:
            grant = db.get(OAuthGrant, code.grant_id)
            if grant is not None:
                revoke_grant(db=db, rt=rt, grant=grant, reason="code reused", request_id=request_id)
        raise OAuthError("invalid_grant", "authorization code already used; its grant is revoked")
    if aware(code.expires_at) <= utcnow():
        raise OAuthError("invalid_grant", "authorization code expired")
    if form.get("redirect_uri", "") != code.redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request's")
    if not _verifier_ok(form.get("code_verifier", ""), code.code_challenge):
        raise OAuthError("invalid_grant", "PKCE code_verifier does not match the code_challenge")
    resource = form.get("resource", code.resource)
    if resource != code.resource:
        raise OAuthError("invalid_target", "resource differs from the one consented to")
    # used once, even by concurrent exchanges: only one UPDATE finds it unused
    claimed = db.execute(
        update(OAuthCode)
        .where(OAuthCode.id == code.id, OAuthCode.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise OAuthError("invalid_grant", "authorization code already used")
    user = db.get(User, code.user_id)
    if user is None or user.disabled:
        raise OAuthError("invalid_grant", "the consenting user is disabled or gone")
    caller = Caller(Principal(f"User:{user.name}", user=user.name), request_id)
    try:
        grant = _make_grant(db, rt, caller, client, code)
    except Forbidden as exc:  # the user lost what it consented to meanwhile
        db.rollback()
        raise OAuthError("invalid_grant", exc.detail) from None
    tokens = _tokens(db, rt.settings, grant)
    db.commit()
    return tokens


def _make_grant(
    db: Session, rt: Runtime, caller: Caller, client: OAuthClient, code: OAuthCode
) -> OAuthGrant:
    project = db.scalars(select(Project).where(Project.name == code.project)).first()
    if project is None:
        raise OAuthError("invalid_grant", f"project `{code.project}` no longer exists")
    user = caller.principal.user
    assert user is not None
    name = f"oauth-{secrets.token_hex(5)}"
    with unit_of_work(
        db=db,
        rt=rt,
        caller=caller,
        kind="mcptokens",
        action="create",
        name=name,
        project=project.name,
        per_object=True,  # no `create mcptokens` needed: consent is the permission
    ) as work:
        work.require("projects", CONSENT, project.name, project.name)
        name_free(db, name)
        bindings = _scoped(work, list(code.role_bindings), project.name)
        token, _ = issue_token(
            work,
            user=user,
            project=project,
            name=name,
            description=f"OAuth grant to {client.client_name or client.client_id}"[:1000],
            mode="oauth",
            bindings=bindings,
            expires=None,
        )
        token.prefix = OAUTH_ACCESS_PREFIX  # its bearers are OAuth access tokens
        grant = OAuthGrant(
            token_id=token.id,
            client_id=client.id,
            user_name=user,
            resource=code.resource,
            scope=code.scope,
        )
        db.add(grant)
        db.flush()
        code.grant_id = grant.id
        client.last_used_at = utcnow()
        work.audit(
            detail={
                "rbac": "oauth",
                "client": client.client_id,
                "resource": code.resource,
                "bindings": [str(b) for b in bindings],
                "tokenSha": token.token_sha,
            }
        )
        # unit_of_work commits here; the tokens are written in a second transaction
    return grant


def refresh(
    *, db: Session, rt: Runtime, form: Mapping[str, str], request_id: str
) -> dict[str, Any]:
    """``grant_type=refresh_token``: rotate. A rotated token coming back revokes the grant."""
    client = _client(db, form)
    row = _find(db, form.get("refresh_token", ""), "refresh")
    if row is None or row.grant.client_id != client.id:
        raise OAuthError("invalid_grant", "unknown refresh token")
    grant = row.grant
    if row.used_at is not None:
        revoke_grant(
            db=db, rt=rt, grant=grant, reason="refresh token reused", request_id=request_id
        )
        raise OAuthError(
            "invalid_grant", "refresh token was already used; every token of this grant is revoked"
        )
    if grant.token.revoked_at is not None:
        raise OAuthError("invalid_grant", "the grant is revoked")
    known = rt.authorizer.token(grant.token.token_sha)
    if known is not None and known.creator_disabled:  # the continuous ceiling
        raise OAuthError("invalid_grant", "the user who consented is disabled")
    if aware(row.expires_at) <= utcnow():
        raise OAuthError("invalid_grant", "refresh token expired")
    resource = form.get("resource", grant.resource)
    if resource != grant.resource:
        raise OAuthError("invalid_target", "a grant's tokens are for its own resource only")
    claimed = db.execute(
        update(OAuthToken)
        .where(OAuthToken.id == row.id, OAuthToken.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise OAuthError("invalid_grant", "refresh token was already used")
    tokens = _tokens(db, rt.settings, grant)
    db.commit()
    return tokens


def token_endpoint(
    *, db: Session, rt: Runtime, form: Mapping[str, str], request_id: str
) -> dict[str, Any]:
    grant_type = form.get("grant_type", "")
    if grant_type == "authorization_code":
        return exchange_code(db=db, rt=rt, form=form, request_id=request_id)
    if grant_type == "refresh_token":
        return refresh(db=db, rt=rt, form=form, request_id=request_id)
    raise OAuthError(
        "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"
    )


# -- revocation, introspection, grants -----------------------------------------------------


def _as_token(token: McpToken) -> Principal:
    return Principal(
        f"McpToken:{token.token_sha}",
        token_name=token.name,
        token_sha=token.token_sha,
        token_project=token.project.name,
    )


def revoke_grant(
    *,
    db: Session,
    rt: Runtime,
    grant: OAuthGrant,
    reason: str,
    request_id: str = "",
    by: Principal | None = None,
) -> None:
    """Revoke a grant's McpToken (so every token of it) and commit; audited."""
    token = grant.token
    if token.revoked_at is not None:
        return
    caller = Caller(by or _as_token(token), request_id)
    with unit_of_work(
        db=db,
        rt=rt,
        caller=caller,
        kind="mcptokens",
        action="update",
        name=token.name,
        project=token.project.name,
        per_object=True,  # the holder, its user or the protocol ends it; never widens
    ) as work:
        mark_revoked(work, token)
        work.audit(action="revoke", detail={"reason": reason, "oauth": True})


def revoke(*, db: Session, rt: Runtime, form: Mapping[str, str], request_id: str) -> None:
    """RFC 7009: revoking either token of a grant revokes the grant. An unknown token, or
    one of another client, is answered the same (200) and changes nothing."""
    client = _client(db, form)
    raw = form.get("token", "")
    row = _find(db, raw, "access") or _find(db, raw, "refresh")
    if row is None or row.grant.client_id != client.id:
        return
    revoke_grant(
        db=db, rt=rt, grant=row.grant, reason="revoked by the client", request_id=request_id
    )


def introspect(*, db: Session, rt: Runtime, raw: str) -> dict[str, Any]:
    """RFC 7662 for an access token: active only while it, its grant and its creator are
    good. ``sub`` is the McpToken subject it acts as; ``aud`` its resource."""
    row = _find(db, raw, "access")
    if row is None or aware(row.expires_at) <= utcnow():
        return {"active": False}
    token = row.grant.token
    grant = rt.authorizer.token(token.token_sha)
    if token.revoked_at is not None or grant is None or grant.revoked or grant.creator_disabled:
        return {"active": False}
    return {
        "active": True,
        "token_type": "Bearer",
        "client_id": row.grant.client.client_id,
        "scope": row.grant.scope,
        "sub": f"McpToken:{token.token_sha}",
        "aud": row.grant.resource,
        "iss": rt.settings.issuer,
        "exp": int(aware(row.expires_at).timestamp()),
        "iat": int(aware(row.created_at).timestamp()),
        "username": row.grant.user_name,
        "project": token.project.name,
        "token_name": token.name,
    }


def access_principal(
    db: Session, raw: str, now: datetime
) -> tuple[Principal, datetime, McpToken] | None:
    """Who an OAuth access token acts as, until when, and its grant's McpToken; None if
    it acts as nobody."""
    row = _find(db, raw, "access")
    if row is None or aware(row.expires_at) <= now:
        return None
    token = row.grant.token
    if token.revoked_at is not None:
        return None
    principal = Principal(
        f"McpToken:{token.token_sha}",
        token_name=token.name,
        token_sha=token.token_sha,
        token_project=token.project.name,
        resource=row.grant.resource,
    )
    return principal, aware(row.expires_at), token


def resource_of_request(settings: Settings, path: str) -> str:
    """The resource a request to mcpd's ``path`` is at (an access token must name it)."""
    return settings.issuer + path


def grants_of(db: Session, user: str) -> list[dict[str, Any]]:
    rows = db.scalars(
        select(OAuthGrant).where(OAuthGrant.user_name == user).order_by(OAuthGrant.id)
    )
    return [grant_out(db, g) for g in rows]


def grant_out(db: Session, g: OAuthGrant) -> dict[str, Any]:
    t = g.token
    return {
        "name": t.name,
        "client": g.client.client_name or g.client.client_id,
        "client_id": g.client.client_id,
        "user": g.user_name,
        "project": t.project.name,
        "resource": g.resource,
        "scope": g.scope,
        "bindings": bindings_of(db, t),
        "created_at": aware(g.created_at),
        "last_used_at": aware(t.last_used_at),
        "revoked_at": aware(t.revoked_at),
    }


def revoke_own_grant(*, db: Session, rt: Runtime, caller: Caller, name: str) -> dict[str, Any]:
    """A user revokes one of its own grants (by its McpToken's name); 404 for any other."""
    user = caller.principal.user
    grant = db.scalars(select(OAuthGrant).join(McpToken).where(McpToken.name == name)).first()
    if user is None or grant is None or grant.user_name != user:
        raise NotFound(f"oauthgrant `{name}` not found")
    revoke_grant(
        db=db,
        rt=rt,
        grant=grant,
        reason="revoked by its user",
        request_id=caller.request_id,
        by=caller.principal,
    )
    return grant_out(db, grant)


def same_origin(a: str, b: str) -> bool:
    x, y = urlsplit(a), urlsplit(b)
    return (x.scheme, x.netloc) == (y.scheme, y.netloc)


__all__ = [
    "ANONYMOUS",
    "CONSENT",
    "REGISTER",
    "SCOPES",
    "AuthRequest",
    "BoundRedirectError",
    "PageError",
    "RedirectError",
    "access_principal",
    "check_request",
    "consent",
    "consent_projects",
    "grant_out",
    "grants_of",
    "introspect",
    "offered_bindings",
    "resource_allowed",
    "resource_of_request",
    "revoke",
    "revoke_grant",
    "revoke_own_grant",
    "token_endpoint",
]
