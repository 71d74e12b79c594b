"""mcpd's FastAPI application."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from mcp.server.transport_security import (
    DEFAULT_MAX_REQUEST_BODY_SIZE,
    TransportSecurityMiddleware,
)
from starlette.types import Receive, Scope, Send

from mcpd import audit
from mcpd.api import (
    auditevents,
    auth,
    backup,
    groups,
    instances,
    mcpserver,
    mcptokens,
    oauth,
    oauth_browser,
    policy,
    projects,
    rbac,
    secrets,
    servers,
    serviceaccounts,
    users,
)
from mcpd.api.deps import guard, request_id
from mcpd.api.route_table import ROUTES, Guard, guard_for
from mcpd.bodylimit import BodyLimits
from mcpd.bootstrap import bootstrap_admin
from mcpd.calllog import CallLog
from mcpd.db import make_engine, migrate
from mcpd.edge import Edge
from mcpd.errors import Forbidden, OAuthError, install_error_handlers, problem
from mcpd.metrics import CONTENT_TYPE_LATEST, Metrics
from mcpd.principal import Principal
from mcpd.replication import PolicyReplicator, SqliteWatcher, sqlite_path
from mcpd.runtime import build_runtime
from mcpd.settings import Settings
from upstream.mcpserver import Watchers
from upstream.relay import Relay

log = logging.getLogger("mcpd")


def check_route_table(app: FastAPI) -> None:
    """Every /api/v1 route has exactly one entry in the route table, and vice versa."""
    served = {
        (method.upper(), path)
        for path, ops in app.openapi()["paths"].items()
        if path.startswith("/api/v1")
        for method in ops
    }
    missing = served - set(ROUTES)
    stale = set(ROUTES) - served
    if missing or stale:
        raise RuntimeError(
            f"route table out of date: no entry for {sorted(missing)}; no route for {sorted(stale)}"
        )


def _audit_handler_deny(request: Request, principal: Principal, exc: Forbidden) -> None:
    route = request.scope.get("route")
    entry = guard_for(request.method, getattr(route, "path_format", request.url.path))
    kind, action = (entry.kind, entry.action) if isinstance(entry, Guard) else ("*", "*")
    name = str(request.path_params.get("name", ""))
    missing = exc.extra.get("missing")
    if not isinstance(entry, Guard) and missing:  # a handler's own check names what it asked
        kind, action, name = missing[0]["kind"], missing[0]["verb"], missing[0]["name"]
    rt = request.app.state.runtime
    with rt.sessions() as session:
        audit.record(
            session,
            principal,
            action=action,
            kind=kind,
            name=name,
            outcome="deny",
            request_id=request_id(request),
            detail={"reason": exc.detail[:2000]},
            revision=rt.authorizer.revision,
        )
        session.commit()


# the MCP SDK's own cap on a Streamable HTTP body (it answers 413 past it, after reading)
MCP_BODY_BYTES = DEFAULT_MAX_REQUEST_BODY_SIZE


def body_limits(settings: Settings) -> BodyLimits:
    return BodyLimits(
        default=settings.max_body_bytes,
        paths=(
            ("/api/v1/restore", settings.max_restore_body_bytes),
            ("/api/v1/apply", settings.max_restore_body_bytes),
            ("/api/v1/servers/*/mcp", MCP_BODY_BYTES),
        ),
        read_timeout=settings.body_read_timeout,
        max_depth=settings.max_json_depth,
    )


class McpdApp(FastAPI):
    """FastAPI behind mcpd's edge (:mod:`mcpd.edge`): the edge comes first, ahead of
    FastAPI's own middlewares too (error pages, telemetry, body limit), so a relayed MCP
    call answered there passes through nothing else."""

    edge: Edge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self  # (as Starlette sets it: the edge's fast path reads app.state)
        await self.edge(scope, receive, send)

    async def behind_edge(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        migrate(engine)  # an empty database is brought to the newest schema
        rt = build_runtime(settings, engine)
        if settings.bootstrap_admin and settings.bootstrap_password:
            with rt.sessions() as s:
                bootstrap_admin(
                    s,
                    rt.authorizer,
                    settings.bootstrap_admin,
                    settings.bootstrap_password.get_secret_value(),
                )
        app.state.runtime = rt
        # an instance going up or down (or its listChanged) reaches its MCP clients
        rt.supervisor.on_tools_changed = lambda name: rt.supervisor.spawn(watchers.notify, name)
        rt.supervisor.on_notification = lambda *n: rt.supervisor.spawn(watchers.deliver, *n)
        replicator: PolicyReplicator | SqliteWatcher | None = None
        if engine.dialect.name == "postgresql":  # other replicas may share this database
            replicator = PolicyReplicator(
                settings.database_url, rt.authorizer, rt.load_policy, rt.generations
            )
            replicator.start()
        elif path := sqlite_path(settings.database_url):  # `mcpd bootstrap` may write it too
            replicator = SqliteWatcher(path, rt.authorizer, rt.load_policy, rt.generations)
            replicator.start()
        app.state.replicator = replicator
        log.info(
            "mcpd ready: %d policy lines, %s",
            len(rt.authorizer.index),
            "indexed" if rt.authorizer.indexed else "plain enforcer (model differs from index)",
        )
        calls = asyncio.get_running_loop().create_task(rt.call_log.run())
        try:
            # the supervisor's children are stopped (SIGTERM, then SIGKILL) on the way out
            async with rt.supervisor.running(), app.state.mcp_sessions.run():
                yield
        finally:
            calls.cancel()
            with suppress(asyncio.CancelledError):
                await calls
            try:  # the calls' records the spool still holds (the next start commits them else)
                await run_in_threadpool(rt.call_log.flush)
            except Exception as exc:
                log.error("call records left in the spool, for the next start: %s", exc)
            rt.call_log.close()
            if replicator is not None:
                await run_in_threadpool(replicator.stop)
            engine.dispose()

    app = McpdApp(title="mcpd", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)

    @app.exception_handler(Forbidden)
    async def _audited_forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        """Every deny is audited: those raised inside a handler (the creator ceiling,
        can-i for another subject, ...) are written here, after the handler's
        transaction was rolled back."""
        principal = getattr(request.state, "principal", None)
        if not exc.audited and principal is not None:
            await run_in_threadpool(_audit_handler_deny, request, principal, exc)
        return problem(exc.status, exc.title, exc.detail, **exc.extra)

    @app.exception_handler(OAuthError)
    async def _oauth_error(request: Request, exc: OAuthError) -> JSONResponse:
        return oauth.oauth_error(exc)

    metrics = Metrics()  # a registry per app: several apps in one process never collide
    app.state.metrics = metrics
    # guard runs on every API route, whether or not the handler asks for the caller
    # (FastAPI then reuses its result for a handler's PrincipalDep): nothing fails open.
    watchers = Watchers()
    app.state.mcp_sessions = mcpserver.build_session_manager(watchers, settings)
    app.state.mcp_security = TransportSecurityMiddleware(mcpserver.transport_security(settings))
    app.state.relay = Relay()  # tools/call's fast lane (upstream/relay)
    identities = (auth, users, groups, rbac, mcptokens, serviceaccounts)
    routers = (projects, servers, secrets, auditevents)
    for module in (*identities, *routers, backup, instances, policy):
        app.include_router(module.router, dependencies=[Depends(guard)])
    app.include_router(oauth.grants, dependencies=[Depends(guard)])
    # the OAuth endpoints (outside /api/v1) authenticate and decide themselves
    app.include_router(oauth.router)
    app.include_router(oauth_browser.router)
    check_route_table(app)

    # one raw ASGI layer (mcpd.edge) in front of everything: bounds first (a body is capped
    # and its nesting checked before anything reads it), CORS, request ids, metrics, then a
    # server's relayed MCP calls answered before FastAPI sees them
    app.edge = Edge(
        app.behind_edge,
        limits=body_limits(settings),
        metrics=metrics,
        fast_path=instances.McpFastPath(),
    )

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        """Prometheus text exposition; public, like /healthz."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz(request: Request) -> JSONResponse:
        try:
            with request.app.state.runtime.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:  # any database failure means not ready
            return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, 503)
        ready: dict[str, Any] = {"status": "ok", "database": "ok"}
        calls: CallLog = request.app.state.runtime.call_log
        spool = calls.spool
        if spool is not None:  # (SQLite: mcpd.calllog)
            ready["callSpoolPendingBytes"] = spool.pending
            if spool.full:  # every tools/call is refused meanwhile
                why = calls.last_error or "the database has not taken its records yet"
                ready["status"] = "unavailable"
                ready["callSpool"] = f"full ({spool.max_bytes} bytes, {spool.limit_setting}): {why}"
                return JSONResponse(ready, 503)
        return JSONResponse(ready)

    return app
