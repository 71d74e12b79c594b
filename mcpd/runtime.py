"""What a running mcpd holds: settings, database, the shared Authorizer, secrets key."""

from __future__ import annotations

import time
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


class SessionCache:
    """Login sessions already looked up, remembered for at most ``ttl`` seconds.

    A busy client sends many requests on one session; each would otherwise cost a query
    (and a thread hop) before anything else. Logging out, and any change to users, forget
    here at once; other replicas forget within ``ttl`` (a second: the time SPEC §6 allows a
    revocation to reach every replica). Plain dict operations: safe across threads.
    """

    def __init__(self, ttl: float = 1.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, object]] = {}

    def get(self, sha: str) -> object | None:
        entry = self._entries.get(sha)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            self._entries.pop(sha, None)
            return None
        return entry[1]

    def put(self, sha: str, value: object, valid_for: float) -> None:
        """Remember ``value`` for ``ttl`` seconds, or ``valid_for`` if that is shorter."""
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[sha] = (time.monotonic() + min(self.ttl, valid_for), value)

    def forget(self, sha: str) -> None:
        self._entries.pop(sha, None)

    def clear(self) -> None:
        self._entries.clear()


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    authorizer: Authorizer
    secret_box: SecretBox
    login_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(10, 60.0))
    session_cache: SessionCache = field(default_factory=SessionCache)


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
