"""``mcplocal serve``: the proxy over Streamable HTTP at ``/mcp``, for McpToken holders.

The bearer selects the project: a static McpToken, or an OAuth access token mcpd issued
for this mcplocal (checked by introspection at mcpd, :mod:`mcplocal.introspect`; it acts as
its grant's McpToken, and only if issued for this resource, RFC 8707). Validity (unknown,
expired, revoked, creator disabled) is read from the policy copy mcpd streams to this
process, so a revocation is enforced as soon as mcpd streams it. A missing or bad token
gets 401 with an RFC 9728 ``resource_metadata`` challenge; the metadata, at
``/.well-known/oauth-protected-resource``, names mcpd as the authorization server.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import anyio
import httpx2
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from authz.tokens import token_kind, token_sha256
from client import AsyncMcpdClient
from mcplocal.audit import AuditReporter, spool_dir_for
from mcplocal.cache import FileCache
from mcplocal.introspect import Introspector
from mcplocal.pipeline import Pipeline
from mcplocal.policy import PolicyFollower
from mcplocal.proxy import Caller, Proxy
from mcplocal.settings import McpdCredential, Settings
from upstream.relay import (
    SESSION_HEADER,
    VERSION_HEADER,
    Relay,
    is_tools_call,
    owns_session,
    replay,
    single_request,
)
from upstream.supervisor import SupervisorSettings

log = logging.getLogger("mcplocal")

METADATA_PATH = "/.well-known/oauth-protected-resource"
SCOPES = ["mcp"]
#: how long a lost policy stream may take to come back before /readyz says so (a
#: reconnect, e.g. when the login it was opened with lapses after a renewal)
POLICY_GRACE_SECONDS = 5.0
# what a client is told on a 401
BEARERS = (
    "send an OAuth access token from mcpd (see resource_metadata) or a static McpToken "
    "(mcpctl_pat_..., from `mcpctl create mcptoken`)"
)


class _Metrics:
    def __init__(self, audit: AuditReporter) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        spool = audit.spool
        gauges = {
            "mcplocal_audit_spool_bytes": ("audit spool bytes on disk", lambda: spool.bytes),
            "mcplocal_audit_spool_pending_bytes": (
                "audit spool bytes mcpd has not committed yet",
                lambda: spool.pending,
            ),
            "mcplocal_audit_spool_max_bytes": ("the audit spool's bound", lambda: spool.max_bytes),
            "mcplocal_audit_spool_full": (
                "1 while the audit spool is full (calls are refused)",
                lambda: float(spool.full),
            ),
            "mcplocal_audit_records_spooled": ("audit records written", lambda: spool.records),
            "mcplocal_audit_records_sent": ("audit records mcpd committed", lambda: audit.sent),
            "mcplocal_audit_records_rejected": (
                "audit records mcpd refused as malformed (logged)",
                lambda: audit.rejected,
            ),
            "mcplocal_audit_refused_calls": (
                "calls refused because the audit spool was full",
                lambda: spool.refused,
            ),
        }
        for name, (doc, read) in gauges.items():
            Gauge(name, doc, registry=self.registry).set_function(read)
        requests = Counter(
            "mcplocal_mcp_requests_total",
            "HTTP requests to /mcp, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        # each child once (``labels`` looks it up under a lock: for every request)
        self.ok, self.unauthorized = requests.labels("ok"), requests.labels("unauthorized")
        self.lists_from_cache = Counter(
            "mcplocal_cached_lists_total",
            "tools/list requests answered from the serialized listing cache",
            registry=self.registry,
        )
        self.relayed = Counter(
            "mcplocal_relayed_calls_total",
            "tools/call requests relayed as bytes (the fast lane) rather than through the SDK",
            registry=self.registry,
        )


class _Asgi:
    """A plain ASGI callable as a route (Starlette treats functions as request handlers)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class _McpFirst:
    """``/mcp`` (GET, POST, DELETE) served ahead of Starlette's router; anything else, and
    any other method on it (405), goes on to the router as before."""

    def __init__(self, app: ASGIApp, endpoint: ASGIApp) -> None:
        self.app, self.endpoint = app, endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == "/mcp"
            and not scope.get("root_path")
            and scope["method"] in ("GET", "POST", "DELETE")
        ):
            await self.endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)


@lru_cache(maxsize=4096)
def _user(subject: str) -> AuthenticatedUser:
    """The SDK's user for ``subject``, to which it binds each MCP session the subject opens:
    made once, not for each request (two pydantic models, ~5 us)."""
    return AuthenticatedUser(AccessToken(token="", client_id=subject, scopes=[]))


async def capped_body(scope: Scope, receive: Receive, send: Send, cap: int) -> bytes | None:
    """The request's body, or None once it is answered 413 (over ``cap`` bytes, declared
    or counted as it streams in, as the MCP SDK's ``RequestBodyLimitMiddleware`` answers
    it) or the client went away before sending it all."""
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                break
            if declared > cap:
                await Response("Request body too large", status_code=413)(scope, receive, send)
                return None
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None  # (gone before the whole body came: nothing to answer)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            await Response("Request body too large", status_code=413)(scope, receive, send)
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def create_app(settings: Settings, credential: McpdCredential) -> Starlette:
    public = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    # every client of mcpd here shares mcplocal's credential as the client's auth flow
    policy = PolicyFollower(settings.mcpd_url, credential.auth)
    path = "/api/v1/auditevents"
    audit = AuditReporter(
        settings.mcpd_url,
        credential.auth,
        spool_dir_for(settings.audit_spool_dir, settings.mcpd_url, path),
        path=path,
        max_bytes=settings.audit_spool_max_bytes,
        fsync=settings.audit_spool_fsync,
        linger=settings.audit_delivery_linger,
    )
    metrics = _Metrics(audit)
    state: dict[str, Any] = {"relay": Relay(stateless=settings.stateless)}
    upstream = SupervisorSettings(
        start_timeout=10.0,
        tools_ttl=settings.tools_cache_ttl,
        negative_ttl=settings.tools_cache_negative_ttl,
    )

    def caller_of(ctx: ServerRequestContext[Any]) -> Caller:
        request = ctx.request
        assert isinstance(request, Request)
        caller: Caller = request.state.caller
        return caller

    resource = f"{public}/mcp"
    authorization_server = (settings.authorization_server or settings.mcpd_url).rstrip("/")

    def challenge(description: str, error: str | None = "invalid_token") -> Response:
        """RFC 6750 3 / RFC 9728 5.1: a missing credential gets no error code."""
        metrics.unauthorized.inc()
        description += f"; {BEARERS}"
        code = f'error="{error}", ' if error else ""
        header = (
            f'Bearer {code}error_description="{description}", '
            f'resource_metadata="{public}{METADATA_PATH}", scope="{" ".join(SCOPES)}"'
        )
        body = {"error": error or "invalid_request", "error_description": description}
        return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": header})

    async def oauth_grant(raw: str) -> str | Response:
        """The McpToken sha an OAuth access token acts as here, or the 401 to answer."""
        try:
            claims = await state["introspector"].check(raw)
        except Exception as exc:  # mcpd unreachable or refusing: no way to tell, so no
            log.warning("OAuth introspection at mcpd failed: %s", exc)
            return JSONResponse(
                {"error": "temporarily_unavailable", "error_description": "cannot reach mcpd"},
                status_code=503,
            )
        if claims is None:
            return challenge("invalid, expired or revoked token")
        if claims.get("aud") != resource:  # RFC 8707: issued for another resource
            return challenge(f"this token was issued for another resource, not {resource}")
        return str(claims.get("sub", "")).removeprefix("McpToken:")

    async def authenticate(request: Request) -> Caller | Response:
        authorizer = policy.authorizer
        if policy.refused is not None:  # serve nothing it can no longer authorize
            return JSONResponse({"error": f"not serving: {policy.refused}"}, status_code=503)
        if authorizer is None:
            return JSONResponse({"error": "not ready: no policy from mcpd yet"}, status_code=503)
        scheme, _, raw = request.headers.get("authorization", "").partition(" ")
        raw = raw.strip()
        if scheme.lower() != "bearer" or not raw:
            return challenge("send `Authorization: Bearer <token>`", error=None)
        kind = token_kind(raw)
        if kind == "mcptoken":
            sha = token_sha256(raw)
        elif kind == "oauth":
            got = await oauth_grant(raw)
            if isinstance(got, Response):
                return got
            sha = got
        else:
            return challenge("the bearer must be an OAuth access token or an McpToken")
        grant = authorizer.token(sha)
        if (
            grant is None
            or grant.revoked
            or grant.creator_disabled  # as mcpd: refused like a revoked token, until enabled
            or (grant.expires_at is not None and grant.expires_at <= time.time())
        ):
            return challenge("invalid, expired or revoked token")  # one answer for all three
        return Caller(
            f"McpToken:{grant.sha}",
            grant.project,
            token_name=grant.name,
            token_sha=grant.sha,
        )

    async def mcp_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate, then hand the request to the fast lane or the MCP session manager."""
        request = Request(scope, receive)
        who = await authenticate(request)
        if isinstance(who, Response):
            await who(scope, receive, send)
            return
        metrics.ok.inc()
        scope.setdefault("state", {})["caller"] = who
        # the SDK binds each MCP session to the credential that opened it
        scope["user"] = _user(who.subject)
        manager: StreamableHTTPSessionManager = state["sessions"]
        if scope["method"] == "POST":  # (the body under the SDK's own size limit)
            body = await capped_body(scope, receive, send, manager.max_request_body_size)
            if body is not None:
                await post(request, who, scope, receive, send, body)
            return
        if scope["method"] == "DELETE" and (sid := request.headers.get(SESSION_HEADER)):
            state["relay"].forget(sid)
        await manager.handle_request(scope, receive, send)

    async def post(
        request: Request, who: Caller, scope: Scope, receive: Receive, send: Send, body: bytes
    ) -> None:
        fast = await fast_lane(request, who, body)
        if fast is not None:
            await fast(scope, receive, send)
            return
        if not settings.stateless:  # the relay asks a session only what it declared
            send = state["relay"].watch_initialize(body, send)
        await state["sessions"].handle_request(scope, replay(body, receive), send)

    async def fast_lane(request: Request, who: Caller, body: bytes) -> Response | None:
        """A fast answer to this POST (upstream/relay), or None: the SDK path
        answers it. Sessions: the SDK's, opened by this caller; stateless, the caller's own.
        The SDK's checks of Host and Origin apply as they do on its path."""
        if await state["security"].validate_request(request, is_post=True) is not None:
            return None  # the SDK path says what is wrong
        proxy: Proxy = state["proxy"]
        relay: Relay = state["relay"]
        sid = request.headers.get(SESSION_HEADER)
        if settings.stateless:
            owner = who.subject
        elif sid is not None and owns_session(state["sessions"], sid, request.user):
            owner = sid
        else:
            return None
        message = single_request(request.headers, body)
        if message is None:
            handled = relay.cancelled(owner, body) or relay.answered(owner, body)
            return Response(status_code=202) if handled else None
        if message["method"] == "tools/list":
            return listed(proxy, who, message, request.headers, sid)
        if not is_tools_call(message):
            return None
        found = await proxy.relayable(who, message, request.headers)
        if found is None:
            return None
        target, call, done = found
        metrics.relayed.inc()
        return relay.response(owner, target, call, sid, on_done=done)

    def listed(
        proxy: Proxy, who: Caller, message: dict[str, Any], headers: Any, sid: str | None
    ) -> Response | None:
        """``tools/list`` answered from the listing cache, already serialized (the SDK
        path spends ~15 ms dumping, re-validating and framing 1,000 tools)."""
        if (message.get("params") or {}).get("cursor") is not None:
            return None
        version = headers.get(VERSION_HEADER)
        result = proxy.listing_json(who, version, sid if not settings.stateless else None)
        if result is None:
            return None
        metrics.lists_from_cache.inc()
        head = b'{"jsonrpc":"2.0","id":' + json.dumps(message["id"]).encode() + b',"result":'
        extra = {SESSION_HEADER: sid} if sid else {}
        return Response(head + result + b"}", media_type="application/json", headers=extra)

    async def metadata(request: Request) -> Response:
        return JSONResponse(
            {
                "resource": resource,
                "resource_name": "mcplocal",
                "authorization_servers": [authorization_server],
                "scopes_supported": SCOPES,
                "bearer_methods_supported": ["header"],
                "mcpctl_bearer": BEARERS,
                "resource_documentation": "https://github.com/mcpctl/mcpctl#mcplocal",
            },
            headers={"Access-Control-Allow-Origin": "*"},
        )

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        ok = (
            policy.authorizer is not None
            and policy.fresh(POLICY_GRACE_SECONDS)
            and policy.refused is None
            and not audit.full
        )
        body: dict[str, Any] = {"status": "ok" if ok else "unavailable", "policy": policy.synced}
        body["credential"] = credential.kind
        if policy.refused:
            body["refused"] = policy.refused
        if policy.last_error:
            body["lastError"] = policy.last_error
        if audit.full:
            body["auditSpool"] = audit.spool_full_reason + "; tool calls are refused"
        return JSONResponse(body, status_code=200 if ok else 503)

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        cache = FileCache(settings.cache_dir, max_bytes=settings.cache_max_bytes)
        async with (
            httpx2.AsyncClient(timeout=60.0) as http,
            AsyncMcpdClient(settings.mcpd_url, credential.auth, timeout=10.0) as mcpd,
        ):
            state["introspector"] = Introspector(mcpd, ttl=settings.oauth_introspection_ttl)
            proxy = Proxy(
                settings.mcpd_url,
                credential.auth,
                policy,
                Pipeline(cache, http),
                audit,
                upstream_settings=upstream,
            )
            policy.on_change = lambda: proxy.tools_changed(None)
            state["proxy"] = proxy
            security = TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=settings.hosts(),
                allowed_origins=settings.origins(),
            )
            state["security"] = TransportSecurityMiddleware(security)
            state["sessions"] = StreamableHTTPSessionManager(
                proxy.build_server(caller_of, stateless=settings.stateless),
                stateless=settings.stateless,
                security_settings=security,
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(policy.run)
                tg.start_soon(audit.run)
                tg.start_soon(credential.keep_fresh)
                async with proxy.running(), state["sessions"].run():
                    if not await policy.wait_ready(15.0):
                        log.warning(
                            "no policy from mcpd yet (%s): refusing calls", policy.last_error
                        )
                    yield
                with anyio.CancelScope(shield=True), anyio.move_on_after(5.0):
                    await audit.flush_quietly(http)  # what was reported reaches mcpd if it can
                tg.cancel_scope.cancel()
            audit.spool.close()  # what is left is sent by the next start

    return Starlette(
        # /mcp ahead of the router: its requests skip route matching and the exception layer
        middleware=[Middleware(_McpFirst, endpoint=mcp_endpoint)],
        routes=[
            Route("/mcp", _Asgi(mcp_endpoint), methods=["GET", "POST", "DELETE"]),
            Route(METADATA_PATH, metadata),
            Route(METADATA_PATH + "/mcp", metadata),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", prometheus),
        ],
        lifespan=lifespan,
    )
