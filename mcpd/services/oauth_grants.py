"""An OAuth grant once made: what its access tokens act as, introspection (RFC 7662),
revoking it, and a user's own grants (``mcpctl get oauthgrants``).

A grant is an McpToken of the consenting user (:mod:`mcpd.services.oauth`): revoking the
grant revokes that McpToken, so every access and refresh token of it at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from authz.tokens import token_kind, token_sha256
from mcpd.errors import NotFound
from mcpd.models import McpToken, OAuthGrant, OAuthToken, utcnow
from mcpd.principal import Principal
from mcpd.runtime import Runtime, aware
from mcpd.services.mcptokens import bindings_of, mark_revoked
from mcpd.services.work import Caller, unit_of_work


def find_token(db: Session, raw: str, kind: Literal["access", "refresh"]) -> OAuthToken | None:
    """The OAuth token row of ``raw`` (an access or a refresh token), or None."""
    wanted = "oauth" if kind == "access" else "refresh"
    if token_kind(raw) != wanted:
        return None
    return db.scalars(
        select(OAuthToken).where(OAuthToken.token_sha == token_sha256(raw), OAuthToken.kind == kind)
    ).first()


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


def introspect(*, db: Session, rt: Runtime, raw: str) -> dict[str, Any]:
    """RFC 7662 for an access token: active only while it, its grant and its creator are
    good. ``sub`` is the McpToken subject it acts as; ``aud`` its resource."""
    row = find_token(db, raw, "access")
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
    row = find_token(db, raw, "access")
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


__all__ = [
    "access_principal",
    "find_token",
    "grant_out",
    "grants_of",
    "introspect",
    "revoke_grant",
    "revoke_own_grant",
]
