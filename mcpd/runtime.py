"""What a running mcpd holds: settings, database, the shared Authorizer, secrets key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import overload

import anyio
import anyio.from_thread
import anyio.to_thread
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, object_session, sessionmaker

from authz import Authorizer, Rule, TokenGrant
from mcpd.addresses import Rules
from mcpd.calllog import CallLog, spool_dir
from mcpd.changes import Generations, ReadCache
from mcpd.isolation import stdio_sandbox
from mcpd.models import McpToken, User
from mcpd.policystore import load_authorizer, load_stored_rules
from mcpd.ratelimit import RateLimiter
from mcpd.replication import sqlite_path
from mcpd.security import SecretBox
from mcpd.settings import Settings
from mcpd.upstreams import load_spec
from upstream.spec import UpstreamSpec
from upstream.spool import Spool
from upstream.supervisor import Supervisor, SupervisorSettings


class SessionCache:
    """Login sessions and McpTokens already looked up, remembered for at most ``ttl`` seconds.

    A busy client sends many requests on one session; each would otherwise cost a query
    (and a thread hop) before anything else. Logging out, and any change to users, forget
    here at once. With :meth:`watch`, an entry is also forgotten as soon as one of the
    watched tables changes on any replica (``mcpd.changes``: other replicas' commits arrive
    through mcpd.replication's channel), so a session ended elsewhere ends here within the
    notification's delay; ``ttl`` (a second, SPEC §6) bounds it while that channel is down.
    Plain dict operations: safe across threads.
    """

    def __init__(self, ttl: float = 1.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, object, Hashable]] = {}
        self._generations: Generations | None = None
        self._tables: tuple[str, ...] = ()

    def watch(self, generations: Generations, tables: tuple[str, ...]) -> None:
        self._generations, self._tables = generations, tables

    def generation(self) -> Hashable:
        """The watched tables' generation now: read it *before* looking a credential up, and
        pass it to :meth:`put`, so a change made during the lookup is not missed."""
        g = self._generations
        return None if g is None else tuple(g.of(t) for t in self._tables)

    def get(self, sha: str) -> object | None:
        entry = self._entries.get(sha)
        if entry is None:
            return None
        if entry[0] <= time.monotonic() or entry[2] != self.generation():
            self._entries.pop(sha, None)
            return None
        return entry[1]

    def put(self, sha: str, value: object, valid_for: float, generation: Hashable = ...) -> None:
        """Remember ``value`` for ``ttl`` seconds, or ``valid_for`` if that is shorter."""
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        expiry = time.monotonic() + min(self.ttl, valid_for)
        gen = self.generation() if generation is ... else generation
        self._entries[sha] = (expiry, value, gen)

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
    supervisor: Supervisor
    login_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(10, 60.0))
    # OAuth dynamic client registrations per address
    registration_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(10, 60.0))
    session_cache: SessionCache = field(default_factory=SessionCache)
    # bearer sha -> its database lookup in progress, shared by concurrent requests
    lookups: dict[str, asyncio.Future[object]] = field(default_factory=dict)
    # project name -> the names of its servers, for the per-server MCP endpoint
    project_servers: SessionCache = field(default_factory=SessionCache)
    # which tables changed (mcpd.changes), and responses cached until they do
    generations: Generations = field(default_factory=Generations)
    read_cache: ReadCache = field(init=False)
    # tools/call records of the per-server endpoint: written before their calls are answered
    call_log: CallLog = field(init=False)

    def __post_init__(self) -> None:
        database = sqlite_path(self.settings.database_url)
        spool = None
        if database is not None:  # (SQLite: mcpd.calllog)
            spool = partial(
                Spool,
                spool_dir(database),
                max_bytes=self.settings.call_spool_max_bytes,
                fsync=False,
                limit_setting="MCPD_CALL_SPOOL_MAX_BYTES",
            )
        self.call_log = CallLog(self.sessions, spool, linger=self.settings.call_spool_linger)
        self.generations.watch(self.sessions)
        # a session ended on any replica (logout, disable, delete, password) ends here too,
        # and so does a service-account token revoked there
        self.session_cache.watch(
            self.generations,
            ("login_sessions", "users", "service_accounts", "service_account_tokens"),
        )
        self.read_cache = ReadCache(self.generations)

    def load_policy(self) -> tuple[list[Rule], list[TokenGrant]]:
        """The stored rules and token grants, as the database has them now."""
        with self.sessions() as s:
            return load_stored_rules(s), load_token_grants(s)

    def server_changed(self, name: str | None = None) -> None:
        """Called from a request's worker thread after a commit changed server ``name``'s
        config (None: a secret, so any server): its instance restarts, or stops if deleted."""
        self.project_servers.clear()
        if name is None:
            anyio.from_thread.run(self.supervisor.refresh_all)
        else:
            anyio.from_thread.run(self.supervisor.refresh, name)


def token_grant(token: McpToken, disabled: set[str] | None = None) -> TokenGrant:
    """What the Authorizer must know about a stored McpToken (``disabled``: the names of
    disabled users, when the caller has them already; else looked up)."""
    if disabled is None:
        session = object_session(token)
        creator_disabled = bool(
            session is not None
            and session.scalar(select(User.disabled).where(User.name == token.created_by))
        )
    else:
        creator_disabled = token.created_by in disabled
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
        creator_disabled=creator_disabled,
    )


def load_token_grants(session: Session) -> list[TokenGrant]:
    disabled = set(session.scalars(select(User.name).where(User.disabled.is_(True))))
    return [token_grant(t, disabled) for t in session.scalars(select(McpToken))]


def build_runtime(settings: Settings, engine: Engine) -> Runtime:
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions() as s:
        grants = load_token_grants(s)
    authorizer = load_authorizer(
        engine, tokens=grants, model_path=settings.model_path, policy_dir=settings.policy_dir
    )
    key = settings.secrets_key.get_secret_value() if settings.secrets_key else None
    box = SecretBox.from_settings(key, settings.secrets_key_file)

    def load_sync(name: str) -> UpstreamSpec | None:
        with sessions() as s:
            return load_spec(s, box, name)

    async def load(name: str) -> UpstreamSpec | None:
        return await anyio.to_thread.run_sync(load_sync, name)

    supervisor = Supervisor(
        SupervisorSettings(
            log_dir=settings.log_dir,
            start_timeout=settings.instance_start_timeout,
            call_timeout=settings.instance_call_timeout,
            stop_grace=settings.instance_stop_grace,
            max_crashes=settings.instance_max_crashes,
            failed_retry_seconds=settings.instance_retry_failed_seconds,
            probe_interval=settings.probe_interval,
            tools_ttl=settings.tools_cache_ttl,
            negative_ttl=settings.tools_cache_negative_ttl,
            peer_guard=Rules(
                host=settings.host, port=settings.port, allow=settings.upstream_allow_list
            ).peer,
            sandbox=stdio_sandbox(settings),
        ),
        load,
    )
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        authorizer=authorizer,
        secret_box=box,
        supervisor=supervisor,
        login_limiter=RateLimiter(settings.login_attempts_per_minute, 60.0),
        registration_limiter=RateLimiter(settings.oauth_registrations_per_minute, 60.0),
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
