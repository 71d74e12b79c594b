"""The OAuth token and revocation endpoints (RFC 6749 4.1.3 and 6, RFC 7009).

``grant_type=authorization_code`` (:func:`exchange_code`) takes a consented code once, with
its PKCE verifier, and makes the grant - an McpToken of the consenting user, in the
project consented for - and its first tokens; a code used twice revokes what its first use
got. ``grant_type=refresh_token`` (:func:`refresh`) rotates: a rotated refresh token coming
back revokes the grant. :func:`revoke` revokes a grant from either of its tokens. Every
client is public: it is named by ``client_id`` and proves itself with PKCE.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from authlib.oauth2.rfc7636 import create_s256_code_challenge as s256
from authlib.oauth2.rfc7636.challenge import CODE_VERIFIER_PATTERN
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from authz.tokens import OAUTH_ACCESS_PREFIX, generate_oauth_token, token_kind, token_sha256
from mcpd.errors import Forbidden, OAuthError
from mcpd.models import OAuthClient, OAuthCode, OAuthGrant, OAuthToken, Project, User, utcnow
from mcpd.principal import Principal
from mcpd.runtime import Runtime, aware
from mcpd.services.mcptokens import issue_token, name_free
from mcpd.services.oauth import CONSENT, scoped_bindings
from mcpd.services.oauth_clients import find_client
from mcpd.services.oauth_grants import find_token, revoke_grant
from mcpd.services.work import Caller, unit_of_work
from mcpd.settings import Settings


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


def _use_once(db: Session, model: type[OAuthCode] | type[OAuthToken], id: int, used: str) -> None:
    """Mark the single-use row ``id`` used, even against concurrent requests (only one
    UPDATE finds it unused); ``invalid_grant`` saying ``used`` if another got there first."""
    claimed = db.execute(
        update(model).where(model.id == id, model.used_at.is_(None)).values(used_at=utcnow())
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise OAuthError("invalid_grant", used)


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
    _use_once(db, OAuthCode, code.id, "authorization code already used")
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
        bindings = scoped_bindings(work, list(code.role_bindings), project.name)
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
    row = find_token(db, form.get("refresh_token", ""), "refresh")
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
    _use_once(db, OAuthToken, row.id, "refresh token was already used")
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


def revoke(*, db: Session, rt: Runtime, form: Mapping[str, str], request_id: str) -> None:
    """RFC 7009: revoking either token of a grant revokes the grant. An unknown token, or
    one of another client, is answered the same (200) and changes nothing."""
    client = _client(db, form)
    raw = form.get("token", "")
    row = find_token(db, raw, "access") or find_token(db, raw, "refresh")
    if row is None or row.grant.client_id != client.id:
        return
    revoke_grant(
        db=db, rt=rt, grant=row.grant, reason="revoked by the client", request_id=request_id
    )


__all__ = ["exchange_code", "refresh", "revoke", "token_endpoint"]
