"""Reaching the MCP servers: the per-server MCP endpoint, instance status, and logs.

``/api/v1/servers/{name}/mcp`` is a Streamable HTTP MCP endpoint for one server, its tool
names unchanged. The route table's guard has already authenticated the caller and checked
``run`` on the server (in the caller's project: ``?project=P``, or an McpToken's own);
a relayed ``tools/call`` is answered by the fast lane (:class:`McpFastPath`, ahead of
FastAPI, or :func:`_fast_lane` here), anything else by the MCP server of
:mod:`mcpd.api.mcpserver`, whose handlers check each tool, prompt and resource. The
caller's bearer never goes further than here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import suppress
from functools import lru_cache
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecurityMiddleware
from pydantic import Field
from sqlalchemy import select
from starlette.datastructures import QueryParams
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from mcpd.api.common import CamelModel
from mcpd.api.deps import DbDep, PrincipalDep, RuntimeDep, cached_caller
from mcpd.api.mcpserver import CallAudit
from mcpd.api.sessioncap import check_session_cap
from mcpd.errors import NotFound
from mcpd.metrics import record_decision
from mcpd.models import Project, Server
from mcpd.principal import Principal
from mcpd.runtime import Runtime
from upstream.relay import (
    SESSION_HEADER,
    Relay,
    is_tools_call,
    owns_session,
    replay,
    single_request,
)
from upstream.supervisor import STOPPED, Supervisor, UpstreamError

router = APIRouter(prefix="/api/v1", tags=["instances"])


class _Handover(Response):
    """Hands the request to the MCP session manager (the route has done the guarding);
    ``body``: what was already read of the request, handed on first."""

    def __init__(
        self,
        manager: StreamableHTTPSessionManager,
        body: bytes | None = None,
        relay: Relay | None = None,
    ) -> None:
        self.manager = manager
        self.body_read = body
        self.relay = relay  # told the capabilities of a session this POST initializes
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.body_read is not None:
            receive = replay(self.body_read, receive)
            if self.relay is not None:
                send = self.relay.watch_initialize(self.body_read, send)
        await self.manager.handle_request(scope, receive, send)


def _fast_lane(
    request: Request, rt: Runtime, name: str, p: Principal, project: str, body: bytes
) -> Response | None:
    """A relayed answer to this POST (relay.py), or None: the SDK path answers it."""
    inst = rt.supervisor.get(name)
    target = inst.relay if inst is not None else None
    if inst is None or target is None:
        return None
    sid = request.headers.get(SESSION_HEADER)
    relay: Relay = request.app.state.relay
    if sid is None or not owns_session(request.app.state.mcp_sessions, sid, request.user):
        return None
    message = single_request(request.headers, body) if target.speaks(request.headers) else None
    if message is None or not is_tools_call(message):
        handled = relay.cancelled(sid, body) or relay.answered(sid, body)
        return Response(status_code=202) if handled else None
    tool = f"{name}__{message['params']['name']}"
    decision = rt.authorizer.decide(p.subject, project, "tools", tool, "run")
    if not decision.allowed:
        return None  # refused, and audited, by the SDK path's handler
    request.app.state.metrics.relayed.inc()
    call = CallAudit(rt, p, request, name, message["params"]["name"], decision)
    return relay.response(sid, target, message, sid, on_done=call.relayed)


MCP_PATH = "/api/v1/servers/{name}/mcp"
_HEAD, _TAIL = MCP_PATH.split("{name}")


class _Route:
    """What ``scope["route"]`` holds for a request the fast path answers: the route's
    template, for the metrics' label (FastAPI keeps included routers nested, so the route
    object itself is not at hand without a walk through them)."""

    path_format = "/api/v1/servers/{name}/mcp"


class McpFastPath:
    """Ahead of FastAPI's router (called by :class:`mcpd.edge.Edge`): a POST to a server's
    MCP endpoint that the fast lane answers (a relayed ``tools/call``, a cancellation of
    one, a caller's answer to the upstream's request), from a caller known without the
    database, is answered here.

    It is the route's own checks, in the same order and by the same functions: the caller
    from the credential cache (:func:`cached_caller`), ``run`` on the server in the caller's
    project (the route table's guard, the decision counted as the guard counts it), the
    project's servers from their cache, the session's owner, DNS rebinding, then
    :func:`_fast_lane` (``run`` on the tool, the relayed-calls counter). Whatever is not
    certain here - no cached credential, a deny (to be audited), a session to open, any
    other method - goes on to FastAPI unchanged, which answers it as before. What it saves:
    FastAPI's routing and dependency solving, the guard's database session, the thread hop.
    """

    route = _Route()

    def wants(self, scope: Scope) -> bool:
        """Whether this is a POST to one server's MCP endpoint."""
        path: str = scope["path"]
        return (
            scope["method"] == "POST"
            and path.startswith(_HEAD)
            and path.endswith(_TAIL)
            and len(path) > len(MCP_PATH) - 6
            and "/" not in path[len(_HEAD) : -len(_TAIL)]
        )

    async def answer(self, scope: Scope, receive: Receive, body: bytes) -> Response | None:
        """The fast lane's answer to this POST (whose ``body`` is read), or None."""
        name = scope["path"][len(_HEAD) : -len(_TAIL)]
        request = Request(scope, receive)
        rt: Runtime = request.app.state.runtime
        headers = request.headers
        inst = rt.supervisor.get(name)
        target = inst.relay if inst is not None else None
        if target is None or SESSION_HEADER not in headers or not target.speaks(headers):
            return None
        # (the path as request.url.path gives it)
        path = scope["path"].replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
        p = cached_caller(rt, headers.get("authorization", ""), path)
        if p is None:
            return None
        project = (_query_project(scope) if scope.get("query_string") else "") or (
            p.token_project or ""
        )
        if not rt.authorizer.decide(p.subject, project, "servers", name, "run").allowed:
            return None  # refused, and audited, by the guard
        if project:
            servers = rt.project_servers.get(project)
            if not isinstance(servers, frozenset) or name not in servers:
                return None
        record_decision(request, "servers", True)
        request.state.principal, request.state.project = p, project
        scope["user"] = mcp_user(p.subject, name, project)
        security: TransportSecurityMiddleware = request.app.state.mcp_security
        if await security.validate_request(request, is_post=True) is not None:
            return None
        scope["route"] = self.route
        return _fast_lane(request, rt, name, p, project, body)


@lru_cache(maxsize=4096)
def mcp_user(subject: str, server: str, project: str) -> AuthenticatedUser:
    """Who the MCP SDK takes the caller for. The SDK binds each MCP session to the
    credential that opened it; here that is the caller, this server and this project, so a
    session id is useless to anyone else. (Made once for each: a pydantic model.)"""
    who = AccessToken(token="", client_id=f"{subject}|{server}|{project}", scopes=[])
    return AuthenticatedUser(who)


def _query_project(scope: Scope) -> str:
    """``?project=`` of the request, as ``request.query_params`` reads it."""
    return QueryParams(scope["query_string"]).get("project") or ""


def _project_servers(rt: Runtime, project: str) -> frozenset[str]:
    with rt.sessions() as db:
        row = db.scalars(select(Project).where(Project.name == project)).first()
        return frozenset(ps.server_name for ps in row.servers) if row else frozenset()


async def server_mcp(name: str, request: Request, p: PrincipalDep, rt: RuntimeDep) -> Response:
    project = request.state.project
    if project:  # in a project, only that project's servers are reachable
        cached = rt.project_servers.get(project)
        if isinstance(cached, frozenset):
            servers = cached
        else:
            servers = await run_in_threadpool(_project_servers, rt, project)
            rt.project_servers.put(project, servers, rt.project_servers.ttl)
        if name not in servers:
            raise NotFound(f"server `{name}` not found in project {project}")
    try:
        inst = await rt.supervisor.instance(name)  # starts it on first use
    except UpstreamError as exc:
        raise NotFound(str(exc)) from None
    request.scope["user"] = mcp_user(p.subject, name, project)
    security: TransportSecurityMiddleware = request.app.state.mcp_security
    refused = await security.validate_request(request, is_post=request.method == "POST")
    if refused is not None:  # DNS rebinding: a Host or Origin not allowed
        return refused
    relay: Relay = request.app.state.relay
    if request.method == "DELETE" and (sid := request.headers.get(SESSION_HEADER)):
        relay.forget(sid)
    if request.method != "POST":
        return _Handover(request.app.state.mcp_sessions)
    if SESSION_HEADER not in request.headers:  # would open a session: the per-subject cap
        check_session_cap(request.app.state.mcp_sessions, p, rt.settings)
    body = await request.body()
    if inst.relay is None and SESSION_HEADER in request.headers:
        message = single_request(request.headers, body)
        if message is not None and is_tools_call(message):
            # a call made while the instance starts waits for it (the SDK path would too),
            # then takes the fast lane like every later call: only there do the upstream's
            # requests (sampling, elicitation, roots) reach their caller
            with suppress(UpstreamError):
                await inst.ready_session()
    fast = _fast_lane(request, rt, name, p, project, body)
    return fast or _Handover(request.app.state.mcp_sessions, body, relay)


for _method in ("GET", "POST", "DELETE"):  # one operation id each, for the OpenAPI document
    router.add_api_route(
        MCP_PATH.removeprefix("/api/v1"),
        server_mcp,
        methods=[_method],
        tags=["servers"],
        summary="Streamable HTTP MCP endpoint of one server (needs `run` on it)",
        response_class=Response,
        operation_id=f"server_mcp_{_method.lower()}",
    )


# -- instances and logs ------------------------------------------------------------------


class InstanceOut(CamelModel):
    server: str
    transport: str
    status: str = Field(description="PENDING, STARTING, RUNNING, FAILED or STOPPED")
    health: str = Field(description="healthy, unhealthy or unknown (not probed yet)")
    restarts: int
    started_at: str | None = None
    last_error: str | None = None
    last_probe_at: str | None = None
    pid: int | None = None
    log_lines_dropped: int = 0


class InstanceList(CamelModel):
    items: list[InstanceOut]


def _instance_out(supervisor: Supervisor, server: Server) -> InstanceOut:
    inst = supervisor.get(server.name)
    if inst is None:
        return InstanceOut(
            server=server.name, transport=server.transport, status=STOPPED, health="unknown",
            restarts=0,
        )  # fmt: skip
    return InstanceOut.model_validate(inst.status_dict())


@router.get("/instances", response_model=InstanceList, response_model_by_alias=True)
def list_instances(_: PrincipalDep, db: DbDep, rt: RuntimeDep) -> InstanceList:
    """Every server's instance on this mcpd: STOPPED until first used."""
    servers = db.scalars(select(Server).order_by(Server.name))
    return InstanceList(items=[_instance_out(rt.supervisor, s) for s in servers])


@router.get("/instances/{name}", response_model=InstanceOut, response_model_by_alias=True)
def get_instance(name: str, _: PrincipalDep, db: DbDep, rt: RuntimeDep) -> InstanceOut:
    server = db.scalars(select(Server).where(Server.name == name)).first()
    if server is None:
        raise NotFound(f"instance `{name}` not found")
    return _instance_out(rt.supervisor, server)


@router.get(
    "/servers/{name}/logs",
    tags=["servers"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/plain": {}}}},
)
async def server_logs(
    name: str,
    _: PrincipalDep,
    rt: RuntimeDep,
    db: DbDep,
    tail: Annotated[int, Query(ge=0, le=10_000, description="last N lines")] = 100,
    follow: Annotated[bool, Query(description="keep streaming new lines")] = False,
) -> StreamingResponse:
    """The instance's stderr and the supervisor's events about it, as text lines."""
    exists = await run_in_threadpool(
        lambda: db.scalars(select(Server.id).where(Server.name == name)).first() is not None
    )
    if not exists:
        raise NotFound(f"server `{name}` not found")
    buf = rt.supervisor.logbuf(name)

    async def lines() -> AsyncIterator[str]:
        if follow:
            async for line in buf.follow(tail):
                yield line + "\n"
        else:
            for line in buf.tail(tail)[1]:
                yield line + "\n"

    return StreamingResponse(lines(), media_type="text/plain; charset=utf-8")
