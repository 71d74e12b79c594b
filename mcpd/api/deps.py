"""FastAPI dependencies: the database session, the caller, and the one authorization check."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Hashable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from authz import Decision
from authz.tokens import token_kind, token_sha256
from mcpd import audit
from mcpd.api.route_table import PUBLIC, SELF, Guard, guard_for
from mcpd.errors import Forbidden, NotFound, Unauthorized
from mcpd.metrics import record_decision
from mcpd.models import LoginSession, McpToken, ServiceAccountToken
from mcpd.principal import Principal
from mcpd.requestid import request_id_of
from mcpd.runtime import Runtime, SessionCache, aware
from mcpd.services.oauth import resource_of_request
from mcpd.services.oauth_grants import access_principal
from mcpd.services.work import Caller

# Dependencies are `async def` where they do not block: FastAPI runs a plain `def` one in a
# worker thread, a thread hop per request for nothing (11% of mcpd's CPU under load).


async def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(runtime)]


async def get_db(rt: RuntimeDep) -> AsyncIterator[Session]:
    # A session connects only when first used (in the handler's worker thread), so it is
    # made here, on the event loop; closing may talk to the database, so it goes to a
    # worker thread: one thread hop per request, where a sync generator would take two.
    session = rt.sessions()
    try:
        yield session
    finally:
        await run_in_threadpool(session.close)


DbDep = Annotated[Session, Depends(get_db)]


def request_id(request: Request) -> str:
    rid: str | None = getattr(request.state, "request_id", None)
    if rid is None:  # (the edge sets it for every request it passes)
        rid = request.state.request_id = request_id_of(request.scope)
    return rid


def bearer(request: Request) -> str:
    """The raw bearer token; only from the Authorization header, never a query string."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if not header:
        raise Unauthorized("no credentials: send `Authorization: Bearer <token>`")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("credentials must be `Authorization: Bearer <token>`")
    return value.strip()


_LAST_USED_EVERY = timedelta(seconds=60)


def authenticate(session: Session, raw: str, cache: SessionCache | None = None) -> Principal:
    """Who sent this bearer? Unknown, expired and revoked all get the same 401.

    A valid login session or McpToken is remembered in ``cache`` (briefly: see SessionCache).
    """
    kind = token_kind(raw)
    now = datetime.now(UTC)
    gen = cache.generation() if cache is not None else None  # before the lookup
    if kind == "session":
        sha = token_sha256(raw)
        login = session.scalars(select(LoginSession).where(LoginSession.token_sha == sha)).first()
        if login is None or aware(login.expires_at) <= now or login.user.disabled:
            raise Unauthorized("invalid or expired credentials")
        principal = Principal(f"User:{login.user.name}", user=login.user.name, session_sha=sha)
        if cache is not None:
            cache.put(sha, principal, (aware(login.expires_at) - now).total_seconds(), gen)
        return principal
    if kind == "mcptoken":
        sha = token_sha256(raw)
        token = session.scalars(select(McpToken).where(McpToken.token_sha == sha)).first()
        if token is None or token.revoked_at is not None:
            raise Unauthorized("invalid or expired credentials")
        expires = aware(token.expires_at)
        if expires is not None and expires <= now:
            raise Unauthorized("invalid or expired credentials")
        _touch(session, token, now)
        principal = Principal(
            f"McpToken:{sha}",
            token_name=token.name,
            token_sha=sha,
            token_project=token.project.name,
        )
        if cache is not None:
            remaining = (expires - now).total_seconds() if expires is not None else cache.ttl
            cache.put(sha, principal, remaining, gen)
        return principal
    if kind == "serviceaccount":
        return _service_account(session, token_sha256(raw), now, cache, gen)
    if kind == "oauth":
        found = access_principal(session, raw, now)
        if found is None:
            raise Unauthorized("invalid or expired credentials")
        principal, until, token = found
        _touch(session, token, now)
        if cache is not None:
            cache.put(token_sha256(raw), principal, (until - now).total_seconds(), gen)
        return principal
    raise Unauthorized("invalid or expired credentials")


def _service_account(
    session: Session, sha: str, now: datetime, cache: SessionCache | None, gen: Hashable
) -> Principal:
    """A service account's token: valid until revoked (or its optional expiry)."""
    cred = session.scalars(
        select(ServiceAccountToken).where(ServiceAccountToken.token_sha == sha)
    ).first()
    expires = aware(cred.expires_at) if cred is not None else None
    if cred is None or cred.revoked_at is not None or (expires is not None and expires <= now):
        raise Unauthorized("invalid or expired credentials")
    last = aware(cred.last_used_at)
    if last is None or now - last > _LAST_USED_EVERY:
        session.execute(
            update(ServiceAccountToken)
            .where(ServiceAccountToken.id == cred.id)
            .values(last_used_at=now)
        )
        session.commit()
    name = cred.account.name
    principal = Principal(f"ServiceAccount:{name}", service_account=name, credential_sha=sha)
    if cache is not None:
        remaining = (expires - now).total_seconds() if expires is not None else cache.ttl
        cache.put(sha, principal, remaining, gen)
    return principal


def _touch(session: Session, token: McpToken, now: datetime) -> None:
    """Record that ``token`` was used (at most once a minute: a write per request is costly)."""
    last = aware(token.last_used_at)
    if last is None or now - last > _LAST_USED_EVERY:
        session.execute(update(McpToken).where(McpToken.id == token.id).values(last_used_at=now))
        session.commit()


async def _request_project(
    request: Request, guard: Guard, session: Session, principal: Principal
) -> str:
    source = guard.project
    if source == "none":
        return ""
    if source == "caller":
        return request.query_params.get("project") or principal.token_project or ""
    if source.startswith("path:"):
        return str(request.path_params.get(source[5:], ""))
    if source == "query":
        return request.query_params.get("project", "")
    if source == "body":
        try:
            body: Any = json.loads(await request.body() or b"{}")
        except ValueError:
            return ""  # the handler's validation reports the malformed body
        project = body.get("project") if isinstance(body, dict) else None
        return project if isinstance(project, str) else ""
    if source == "token":
        name = request.path_params.get("name", "")
        token = await run_in_threadpool(
            lambda: session.scalars(select(McpToken).where(McpToken.name == name)).first()
        )
        return token.project.name if token is not None else ""
    raise AssertionError(f"unknown project source {source!r}")


async def _caller(rt: Runtime, raw: str) -> Principal:
    """Who sent ``raw``: a login session or McpToken seen valid within the last second
    (SessionCache), else looked up in the database.

    Concurrent requests with one bearer share one lookup: a busy client's requests all
    miss together when its entry expires, and thirty-two lookups at once stalled the event
    loop's other requests for ~80 ms every second (bench/mcpd.py's p99).
    """
    if token_kind(raw) not in ("mcptoken", "session", "serviceaccount", "oauth"):
        raise Unauthorized("invalid or expired credentials")
    sha = token_sha256(raw)
    cached = rt.session_cache.get(sha)
    if isinstance(cached, Principal):
        return _live(rt, cached)
    lookup = rt.lookups.get(sha)
    if lookup is None:
        lookup = rt.lookups[sha] = asyncio.ensure_future(run_in_threadpool(_authenticate, rt, raw))
        lookup.add_done_callback(lambda _: rt.lookups.pop(sha, None))
    principal = await asyncio.shield(lookup)
    assert isinstance(principal, Principal)
    return _live(rt, principal)


async def caller_of(rt: Runtime, raw: str) -> Principal:
    """Who sent the bearer ``raw`` now (401 if nobody valid): for a long answer (a stream)
    to check that the credential it was opened with still holds."""
    return await _caller(rt, raw)


def at_its_resource(rt: Runtime, principal: Principal, path: str) -> bool:
    """RFC 8707: an OAuth access token is good only at the resource it was issued for
    (every other credential names none)."""
    return principal.resource is None or principal.resource == resource_of_request(
        rt.settings, path
    )


def cached_caller(rt: Runtime, authorization: str, path: str) -> Principal | None:
    """Who sent the ``Authorization`` header value to ``path``, if that is known without
    the database (a credential seen valid within the last second, SessionCache, still live,
    at its resource); None when it takes the database, or the answer is a 401: ask
    :func:`guard`."""
    scheme, _, value = authorization.partition(" ")
    raw = value.strip()
    if scheme.lower() != "bearer" or token_kind(raw) is None:
        return None
    cached = rt.session_cache.get(token_sha256(raw))
    if not isinstance(cached, Principal):
        return None
    try:
        principal = _live(rt, cached)
    except Unauthorized:
        return None
    return principal if at_its_resource(rt, principal, path) else None


def _live(rt: Runtime, principal: Principal) -> Principal:
    """A token whose creator is disabled now is refused like a revoked one (the continuous
    ceiling denies it every permission too; this also covers the routes nobody guards).
    So is a revoked one still in the cache (an OAuth grant's access tokens are cached
    under their own hashes, not the McpToken's that revocation forgets)."""
    if principal.token_sha is not None:
        grant = rt.authorizer.token(principal.token_sha)
        if grant is not None and (grant.creator_disabled or grant.revoked):
            raise Unauthorized("invalid or expired credentials")
    return principal


def _authenticate(rt: Runtime, raw: str) -> Principal:
    with rt.sessions() as session:
        return authenticate(session, raw, rt.session_cache)


async def guard(request: Request, rt: RuntimeDep) -> Principal:
    """Authenticate the caller, then ask the shared enforcer about this route (route table).

    A deny is audited. It is a 404 when the caller may not even view the object (so
    existence does not leak), else a 403 carrying the reason.
    """
    route = request.scope.get("route")
    path_format = getattr(route, "path_format", request.url.path)
    entry = guard_for(request.method, path_format)
    if entry is None:  # start-up checks every route is in the table; never fail open
        raise Forbidden(f"route {request.method} {path_format} has no authorization entry")
    if entry == PUBLIC:
        return Principal("")
    principal = await _caller(rt, bearer(request))
    if not at_its_resource(rt, principal, request.url.path):
        raise Unauthorized(f"this OAuth token is for `{principal.resource}`, not this endpoint")
    request.state.principal = principal
    if entry == SELF:
        return principal
    assert isinstance(entry, Guard)
    with rt.sessions() as session:
        project = await _request_project(request, entry, session, principal)
        request.state.project = project
        name = str(request.path_params.get("name", ""))
        decision = rt.authorizer.decide(principal.subject, project, entry.kind, name, entry.action)
        record_decision(request, entry.kind, decision.allowed)
        if decision.allowed:
            return principal
        hidden = bool(name) and (
            entry.action == "get"
            or not rt.authorizer.decide(principal.subject, project, entry.kind, name, "get").allowed
        )
        rid, revision = request_id(request), rt.authorizer.revision
        await run_in_threadpool(
            _audit_deny, session, principal, entry, name, project, decision, rid, revision
        )
    if hidden:
        raise NotFound(f"{entry.kind} `{name}` not found")
    denied = Forbidden(
        f"{principal.display} may not {entry.action} {entry.kind}"
        + (f"/{name}" if name else "")
        + (f" in project {project}" if project else "")
        + f": {principal.redact(decision.reason)}"
    )
    denied.audited = True
    raise denied


def _audit_deny(
    session: Session,
    principal: Principal,
    entry: Guard,
    name: str,
    project: str,
    decision: Decision,
    rid: str,
    revision: str,
) -> None:
    audit.record(
        session,
        principal,
        action=entry.action,
        kind=entry.kind,
        name=name,
        project=project,
        outcome="deny",
        request_id=rid,
        detail={"reason": decision.reason},
        revision=revision,
    )
    session.commit()


PrincipalDep = Annotated[Principal, Depends(guard)]


async def _request_id(request: Request) -> str:
    return request_id(request)


RequestIdDep = Annotated[str, Depends(_request_id)]


async def caller(request: Request, principal: PrincipalDep) -> Caller:
    """The caller as the services see it: who, under which request, and which (kind,
    action) the guard above already decided for this route (so the unit of work does not
    ask the enforcer again)."""
    route = request.scope.get("route")
    entry = guard_for(request.method, getattr(route, "path_format", request.url.path))
    decided = (entry.kind, entry.action) if isinstance(entry, Guard) else None
    return Caller(principal, request_id(request), decided)


CallerDep = Annotated[Caller, Depends(caller)]
