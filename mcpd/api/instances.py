"""Reaching the MCP servers: the per-server MCP endpoint, instance status, and logs.

``/api/v1/servers/{name}/mcp`` is a Streamable HTTP MCP endpoint for one server, its tool
names unchanged. The route table's guard has already authenticated the caller and checked
``run`` on the server (in the caller's project: ``?project=P``, or an McpToken's own);
the MCP handlers below then check each tool, prompt and resource (``run`` on
``tools/<server>__<tool>``, ``prompts/<server>__<prompt>``, ``resources/<server>__<uri>``:
a deny on one hides it from listings and answers it like one that does not exist, the deny
audited) and forward to the supervised upstream session. The caller's bearer never goes
further than here.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, TypeVar

import anyio
import mcp_types as types
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from mcp.client.session import ClientSession
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server as McpServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from pydantic import Field
from sqlalchemy import select
from starlette.datastructures import QueryParams
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from authz import Decision
from mcpd import audit
from mcpd.api.common import CamelModel
from mcpd.api.deps import DbDep, PrincipalDep, RuntimeDep, cached_caller, request_id
from mcpd.api.sessioncap import check_session_cap
from mcpd.errors import NotFound
from mcpd.metrics import record_decision
from mcpd.models import Project, Server
from mcpd.principal import Principal
from mcpd.runtime import Runtime
from mcpd.settings import Settings
from upstream.mcpserver import ListChangedServer, Watchers
from upstream.relay import (
    AUDITED_HEADER,
    SESSION_HEADER,
    Relay,
    error_result,
    is_tools_call,
    owns_session,
    replay,
    single_request,
)
from upstream.supervisor import STOPPED, Supervisor, UpstreamError

log = logging.getLogger("mcpd.mcp")
T = TypeVar("T")

router = APIRouter(prefix="/api/v1", tags=["instances"])


# -- the MCP server behind /servers/{name}/mcp ------------------------------------------------


def _caller(ctx: ServerRequestContext[Any]) -> tuple[Runtime, str, Principal, str]:
    request = ctx.request
    assert isinstance(request, Request), "served only through the guarded route"
    rt: Runtime = request.app.state.runtime
    return rt, request.path_params["name"], request.state.principal, request.state.project


def _unavailable(exc: UpstreamError) -> MCPError:
    return MCPError(types.INTERNAL_ERROR, str(exc))


def _may_run(ctx: ServerRequestContext[Any], kind: str, part: str) -> Decision:
    """``run`` on the server's prompt or resource ``part`` (kind ``prompts``/``resources``)."""
    rt, name, principal, project = _caller(ctx)
    return rt.authorizer.decide(principal.subject, project, kind, f"{name}__{part}", "run")


async def _hidden(ctx: ServerRequestContext[Any], kind: str, part: str, method: str) -> MCPError:
    """Audit the caller's ``method`` on a prompt or resource it may not run, and the answer
    it gets: the one for a prompt that does not exist (see ``known_prompt``), and for a
    resource the one the MCP SDK's server gives (-32602, SEP-2164)."""
    rt, name, principal, project = _caller(ctx)
    assert isinstance(ctx.request, Request)
    decision = _may_run(ctx, kind, part)
    detail = {"server": name, "method": method, "reason": decision.reason}
    row = audit.row(
        principal,
        action="run",
        kind=kind,
        name=f"{name}__{part}"[:255],
        project=project,
        outcome="deny",
        request_id=request_id(ctx.request),
        detail=detail,
        revision=rt.authorizer.revision,
    )
    try:
        await rt.call_log.submit(row)
    except Exception as exc:  # (refused either way)
        log.error("a denied %s's audit record could not be written: %s", method, exc)
    if kind == "prompts":
        return MCPError(types.INVALID_PARAMS, f"Unknown prompt: {part}")
    return MCPError(types.INVALID_PARAMS, f"Unknown resource: {part}", data={"uri": part})


def _prompts_page(
    cursor: str | None,
) -> Callable[[ClientSession], Awaitable[types.ListPromptsResult]]:
    page = types.PaginatedRequestParams(cursor=cursor) if cursor else None
    return lambda s: s.list_prompts(params=page)


def build_mcp_server(watchers: Watchers) -> McpServer[Any]:
    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        rt, name, principal, project = _caller(ctx)
        watchers.add(name, ctx)  # told when this server's tools change
        try:
            tools = await (await rt.supervisor.instance(name)).list_tools()
        except UpstreamError as exc:
            raise _unavailable(exc) from None
        decide = rt.authorizer.decide
        return types.ListToolsResult(
            tools=[
                t
                for t in tools
                if decide(principal.subject, project, "tools", f"{name}__{t.name}", "run").allowed
            ]
        )

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        rt, name, principal, project = _caller(ctx)
        assert isinstance(ctx.request, Request)
        tool = f"{name}__{params.name}"
        decision = rt.authorizer.decide(principal.subject, project, "tools", tool, "run")
        call = CallAudit(rt, principal, ctx.request, name, params.name, decision)
        if not decision.allowed:
            await call.done("deny", None)  # whoever asks: a proxy's deny is mcpd's decision
            # the same answer as for a tool that does not exist: nothing leaks
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")
        token = progress_token_from_params(ctx.params)

        async def progress(progress: float, total: float | None, message: str | None) -> None:
            assert token is not None
            await ctx.session.send_progress_notification(
                token, progress, total, message, related_request_id=str(ctx.request_id)
            )

        try:
            instance = await rt.supervisor.instance(name)
            result = await instance.call_tool(
                params.name, params.arguments, progress if token is not None else None
            )
        except UpstreamError as exc:
            result = types.CallToolResult(
                content=[types.TextContent(type="text", text=str(exc))], is_error=True
            )
            await call.done("error", str(exc))
            return result
        except BaseException as exc:  # an MCP error, or the caller went away
            with anyio.CancelScope(shield=True):
                await call.done("error", str(exc) or type(exc).__name__)
            raise
        withheld = await call.done("error" if result.is_error else "allow", None)
        if withheld is not None:
            raise MCPError(types.INTERNAL_ERROR, withheld)
        return result

    async def forward(
        ctx: ServerRequestContext[Any], what: str, send: Callable[[ClientSession], Awaitable[T]]
    ) -> T:
        """Pass a request on to the server's upstream session as it is."""
        rt, name, _, _ = _caller(ctx)
        try:
            return await (await rt.supervisor.instance(name)).request(what, send)
        except UpstreamError as exc:
            raise _unavailable(exc) from None

    async def list_resources(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        listed = await forward(ctx, "resources/list", lambda s: s.list_resources(params=params))
        shown = [r for r in listed.resources if _may_run(ctx, "resources", str(r.uri)).allowed]
        return listed.model_copy(update={"resources": shown})

    async def list_resource_templates(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return await forward(
            ctx, "resources/templates/list", lambda s: s.list_resource_templates(params=params)
        )

    async def read_resource(
        ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        if not _may_run(ctx, "resources", uri).allowed:
            raise await _hidden(ctx, "resources", uri, "resources/read")
        return await forward(ctx, "resources/read", lambda s: s.read_resource(uri))

    async def list_prompts(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        listed = await forward(ctx, "prompts/list", lambda s: s.list_prompts(params=params))
        shown = [p for p in listed.prompts if _may_run(ctx, "prompts", p.name).allowed]
        return listed.model_copy(update={"prompts": shown})

    async def known_prompt(ctx: ServerRequestContext[Any], prompt: str, method: str) -> None:
        """A prompt the caller may run, or the error of an unknown one. Unknown ones are
        answered here too (the upstream's listing says), so that a denied prompt and an
        absent one get the same answer whatever the upstream's own for absent ones."""
        if not _may_run(ctx, "prompts", prompt).allowed:
            raise await _hidden(ctx, "prompts", prompt, method)
        cursor: str | None = None
        for _ in range(100):
            listed = await forward(ctx, "prompts/list", _prompts_page(cursor))
            if any(p.name == prompt for p in listed.prompts):
                return
            cursor = listed.next_cursor
            if not cursor:
                break
        raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {prompt}")

    async def get_prompt(
        ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        await known_prompt(ctx, params.name, "prompts/get")
        return await forward(
            ctx, "prompts/get", lambda s: s.get_prompt(params.name, params.arguments)
        )

    async def complete(
        ctx: ServerRequestContext[Any], params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        ref = params.ref
        if isinstance(ref, types.PromptReference):
            await known_prompt(ctx, ref.name, "completion/complete")
        request = types.CompleteRequest(params=params)
        return await forward(
            ctx, "completion/complete", lambda s: s.send_request(request, types.CompleteResult)
        )

    async def set_level(
        ctx: ServerRequestContext[Any], params: types.SetLevelRequestParams
    ) -> types.EmptyResult:
        _, name, _, _ = _caller(ctx)
        watchers.logging(name, ctx)  # given the upstream's log messages from now on
        request = types.SetLevelRequest(params=params)
        return await forward(
            ctx, "logging/setLevel", lambda s: s.send_request(request, types.EmptyResult)
        )

    async def subscribe(
        ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        _, name, _, _ = _caller(ctx)
        if not _may_run(ctx, "resources", str(params.uri)).allowed:
            raise await _hidden(ctx, "resources", str(params.uri), "resources/subscribe")
        watchers.subscribe(name, str(params.uri), ctx, True)
        request = types.SubscribeRequest(params=params)
        return await forward(
            ctx, "resources/subscribe", lambda s: s.send_request(request, types.EmptyResult)
        )

    async def unsubscribe(
        ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        _, name, _, _ = _caller(ctx)
        uri = str(params.uri)
        watchers.subscribe(name, uri, ctx, False)
        if watchers.subscribed(name, uri):  # another caller still is: the upstream stays so
            return types.EmptyResult()
        request = types.UnsubscribeRequest(params=params)
        return await forward(
            ctx, "resources/unsubscribe", lambda s: s.send_request(request, types.EmptyResult)
        )

    with warnings.catch_warnings():  # (logging is deprecated only from protocol 2026-07-28)
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        return _server(
            list_tools=list_tools,
            call_tool=call_tool,
            list_resources=list_resources,
            list_resource_templates=list_resource_templates,
            read_resource=read_resource,
            list_prompts=list_prompts,
            get_prompt=get_prompt,
            complete=complete,
            set_level=set_level,
            subscribe=subscribe,
            unsubscribe=unsubscribe,
        )


def _server(**h: Any) -> McpServer[Any]:
    return ListChangedServer(
        "mcpd",
        version="0.1.0",
        instructions="One MCP server, reached through mcpd",
        on_list_tools=h["list_tools"],
        on_call_tool=h["call_tool"],
        on_list_resources=h["list_resources"],
        on_list_resource_templates=h["list_resource_templates"],
        on_read_resource=h["read_resource"],
        on_subscribe_resource=h["subscribe"],
        on_unsubscribe_resource=h["unsubscribe"],
        on_list_prompts=h["list_prompts"],
        on_get_prompt=h["get_prompt"],
        on_completion=h["complete"],
        on_set_logging_level=h["set_level"],
    )


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """DNS-rebinding protection, on: only the allowed Host and Origin headers (loopback by
    default, ``MCPD_MCP_ALLOWED_HOSTS`` / ``MCPD_MCP_ALLOWED_ORIGINS``) reach an MCP
    server, on the SDK path and the fast lane alike."""
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=settings.mcp_hosts(),
        allowed_origins=settings.mcp_origins(),
    )


def build_session_manager(watchers: Watchers, settings: Settings) -> StreamableHTTPSessionManager:
    return StreamableHTTPSessionManager(
        build_mcp_server(watchers), security_settings=transport_security(settings)
    )


class CallAudit:
    """One ``tools/call`` through this endpoint, audited once it ends - before its result
    goes out, in a group commit (:attr:`Runtime.call_log`). A proxy that audits its calls
    itself (it says so in :data:`AUDITED_HEADER` and holds the ``proxy`` operation) gets
    no second record of its allowed calls; a deny is recorded whoever asked."""

    def __init__(
        self,
        rt: Runtime,
        principal: Principal,
        request: Request,
        server: str,
        tool: str,
        decision: Decision,
    ) -> None:
        self.rt, self.principal, self.server, self.tool = rt, principal, server, tool
        self.project = request.state.project
        self.decision = decision
        self.revision = rt.authorizer.revision
        self.request_id = request_id(request)
        self.began = time.perf_counter()
        self.proxied = (
            bool(request.headers.get(AUDITED_HEADER))
            and rt.authorizer.decide(principal.subject, "", "*", "", "proxy").allowed
        )

    async def done(self, outcome: str, error: str | None) -> str | None:
        """Record the call (unless a proxy records it); None, or why its result is withheld."""
        if self.proxied and outcome != "deny":
            return None
        detail: dict[str, Any] = {
            "server": self.server,
            "tool": self.tool,
            "durationMs": round((time.perf_counter() - self.began) * 1000, 3),
            "reason": self.decision.reason,
        }
        if error:
            detail["error"] = error[:2000]
        row = audit.row(
            self.principal,
            action="call",
            kind="tools",
            name=f"{self.server}__{self.tool}",
            project=self.project,
            outcome=outcome,
            request_id=self.request_id,
            detail=detail,
            revision=self.revision,
        )
        try:
            await self.rt.call_log.submit(row)
        except Exception as exc:  # the database refused it: no result goes out unaudited
            log.error("a tools/call's audit record could not be written: %s", exc)
            return "mcpd could not write this call's audit record: its result is withheld"
        return None

    async def relayed(self, response: dict[str, Any] | None, error: str | None) -> Any:
        """The fast lane's :data:`upstream.relay.OnDone`."""
        result = (response or {}).get("result")
        failed = error is not None or not isinstance(result, dict) or result.get("isError")
        withheld = await self.done("error" if failed else "allow", error)
        if withheld is not None and response is not None:
            return error_result(response.get("id"), withheld)
        return None


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
        who = AccessToken(token="", client_id=f"{p.subject}|{name}|{project}", scopes=[])
        scope["user"] = AuthenticatedUser(who)
        security: TransportSecurityMiddleware = request.app.state.mcp_security
        if await security.validate_request(request, is_post=True) is not None:
            return None
        scope["route"] = self.route
        return _fast_lane(request, rt, name, p, project, body)


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
        await rt.supervisor.instance(name)  # starts it on first use
    except UpstreamError as exc:
        raise NotFound(str(exc)) from None
    # The SDK binds each MCP session to the credential that opened it; here that is the
    # caller, this server and this project, so a session id is useless to anyone else.
    who = AccessToken(token="", client_id=f"{p.subject}|{name}|{project}", scopes=[])
    request.scope["user"] = AuthenticatedUser(who)
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
