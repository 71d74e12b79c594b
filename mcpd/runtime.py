"""What a running mcpd holds: settings, database, the shared Authorizer, secrets key."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import overload

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from authz import Authorizer, TokenGrant
from authz.store import load_authorizer
from mcpd.models import McpToken
from mcpd.ratelimit import RateLimiter
from mcpd.security import SecretBox
from mcpd.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    authorizer: Authorizer
    secret_box: SecretBox
    login_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(10, 60.0))


def token_grant(token: McpToken) -> TokenGrant:
    """What the Authorizer must know about a stored McpToken."""
    expires = token.expires_at
    if expires is not None and expires.tzinfo is None:  # SQLite drops the zone
        expires = expires.replace(tzinfo=UTC)
    return TokenGrant(
        sha=token.token_sha,
        project=token.project.name,
        creator=f"User:{token.created_by}",
        name=token.name,
        expires_at=expires.timestamp() if expires else None,
        revoked=token.revoked_at is not None,
    )


def load_token_grants(session: Session) -> list[TokenGrant]:
    return [token_grant(t) for t in session.scalars(select(McpToken))]


def build_runtime(settings: Settings, engine: Engine) -> Runtime:
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions() as s:
        grants = load_token_grants(s)
    authorizer = load_authorizer(
        engine, tokens=grants, model_path=settings.model_path, policy_dir=settings.policy_dir
    )
    key = settings.secrets_key.get_secret_value() if settings.secrets_key else None
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        authorizer=authorizer,
        secret_box=SecretBox.from_settings(key, settings.secrets_key_file),
        login_limiter=RateLimiter(settings.login_attempts_per_minute, 60.0),
    )


@overload
def aware(dt: datetime) -> datetime: ...
@overload
def aware(dt: None) -> None: ...
@overload
def aware(dt: datetime | None) -> datetime | None: ...
def aware(dt: datetime | None) -> datetime | None:
    """A stored datetime with its UTC zone (SQLite returns naive datetimes)."""
    if dt is None or dt.tzinfo is not None:
        return dt
    return dt.replace(tzinfo=UTC)
