"""OAuth clients: dynamic registration (RFC 7591), bounded, and redirect-URI matching.

Every client is public (``token_endpoint_auth_method: none``): it proves itself with PKCE.
A redirect URI is https, http on a loopback address (RFC 8252 7.3: any port matches at
authorization time), or a private-use scheme with a dot (``com.example.app:/cb``, RFC 8252
7.1). Nothing else is registered, so a redirect can only ever go where a client said.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2.rfc7591 import ClientMetadataClaims
from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.orm import Session

from mcpd.errors import OAuthError
from mcpd.models import OAuthClient, OAuthGrant, utcnow
from mcpd.schemas.oauth import ClientIn

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
GRANT_TYPES = ("authorization_code", "refresh_token")


def _loopback(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS


def check_redirect_uri(uri: str) -> None:
    """Refuse (``invalid_redirect_uri``) a URI a client may not register."""
    parts = urlsplit(uri)
    bad = OAuthError("invalid_redirect_uri", f"redirect URI `{uri[:200]}`: ")
    if parts.fragment or "#" in uri:
        bad.description += "must not have a fragment"
        raise bad
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http":
        if parts.hostname in LOOPBACK_HOSTS:
            return
        bad.description += "http is allowed only on a loopback address (127.0.0.1, [::1])"
        raise bad
    if parts.scheme and "." in parts.scheme and not parts.netloc:
        return  # a private-use scheme of a native app, reverse-domain
    bad.description += "use https, http on a loopback address, or a reverse-domain scheme"
    raise bad


def redirect_matches(registered: list[str], given: str) -> bool:
    """Exact string match; for a loopback http URI any port (RFC 8252 7.3)."""
    if given in registered:
        return True
    if not _loopback(given):
        return False
    g = urlsplit(given)
    for uri in registered:
        r = urlsplit(uri)
        same = (r.hostname, r.path, r.query) == (g.hostname, g.path, g.query)
        if _loopback(uri) and same and g.username is None and g.password is None:
            return True
    return False


def sweep_clients(db: Session, unused_ttl: int, now: datetime | None = None) -> int:
    """Delete clients registered more than ``unused_ttl`` seconds ago that never got a
    grant (or whose grants are all gone). Returns how many went."""
    cutoff = (now or utcnow()) - timedelta(seconds=unused_ttl)
    has_grant = exists().where(OAuthGrant.client_id == OAuthClient.id)
    stale = select(OAuthClient.id).where(
        or_(OAuthClient.last_used_at.is_(None), OAuthClient.last_used_at < cutoff),
        OAuthClient.created_at < cutoff,
        ~has_grant,
    )
    ids = list(db.scalars(stale))
    if ids:
        db.execute(delete(OAuthClient).where(OAuthClient.id.in_(ids)))
    return len(ids)


def register_client(
    *, db: Session, spec: ClientIn, max_clients: int, unused_ttl: int
) -> OAuthClient:
    """Register a public client; its metadata as answered (RFC 7591 3.2.1)."""
    for uri in spec.redirect_uris:
        check_redirect_uri(uri)
    # authlib checks the other URIs (client_uri ...); redirect URIs were checked above
    claims = ClientMetadataClaims(spec.model_dump(exclude_none=True, exclude={"redirect_uris"}), {})
    try:
        claims.validate()
    except Exception as exc:  # authlib's claim errors: a URI that is not one
        raise OAuthError("invalid_client_metadata", str(exc)[:300]) from None
    unknown = set(spec.grant_types) - set(GRANT_TYPES)
    if unknown:
        raise OAuthError(
            "invalid_client_metadata",
            f"grant_types: only {', '.join(GRANT_TYPES)} (not {', '.join(sorted(unknown))})",
        )
    if set(spec.response_types) - {"code"}:
        raise OAuthError("invalid_client_metadata", "response_types: only `code`")
    sweep_clients(db, unused_ttl)
    if (db.scalar(select(func.count()).select_from(OAuthClient)) or 0) >= max_clients:
        raise OAuthError(
            "temporarily_unavailable",
            "too many registered clients; unused ones expire, try again later",
            status=503,
        )
    extra: dict[str, Any] = spec.model_dump(
        exclude_none=True, include={"client_uri", "software_id", "software_version", "scope"}
    )
    client = OAuthClient(
        client_id="mcpctl-" + secrets.token_urlsafe(24),
        client_name=spec.client_name or "",
        redirect_uris=list(spec.redirect_uris),
        client_metadata={
            **extra,
            "grant_types": list(spec.grant_types),
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        },
    )
    db.add(client)
    db.flush()
    return client


def client_out(client: OAuthClient) -> dict[str, Any]:
    issued = client.created_at
    return {
        "client_id": client.client_id,
        "client_id_issued_at": int(issued.timestamp()),
        "client_name": client.client_name,
        "redirect_uris": client.redirect_uris,
        **client.client_metadata,
    }


def find_client(db: Session, client_id: str) -> OAuthClient | None:
    if not client_id or len(client_id) > 64:
        return None
    return db.scalars(select(OAuthClient).where(OAuthClient.client_id == client_id)).first()


__all__ = [
    "check_redirect_uri",
    "client_out",
    "find_client",
    "redirect_matches",
    "register_client",
    "sweep_clients",
]
