"""The aggregating proxy: one MCP server whose tools are a project's servers' tools.

Every exposed name is ``<server>__<item>`` (see :mod:`mcplocal.names`). ``tools/list``
and ``tools/call`` are both filtered by this process's copy of the shared enforcer
(:class:`mcplocal.policy.PolicyFollower`): ``run`` on ``tools/<server>__<tool>``, which a
binding on the server covers and a tool-level deny takes away. A tool the caller may not
run is answered exactly like a tool that does not exist.

Upstreams are mcpd's per-server endpoints (``/api/v1/servers/{name}/mcp?project=P``),
each held by the same supervisor mcpd uses for its own upstreams: one session per
server and project, reconnect with backoff, a ``tools/list`` cache with positive and
negative TTL dropped on ``listChanged`` and on recovery. One dead upstream is left out of
listings and its calls return ``isError`` results naming it; the others carry on.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio
import httpx2
import mcp_types as types
from anyio.abc import TaskGroup
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server as McpServer
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from mcp_types.methods import serialize_server_result
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from mcplocal.audit import AuditReporter, CallRecord
from mcplocal.names import NameMap
from mcplocal.pipeline import PAGE_TOOL, Pipeline, ProxyModel, page_tool
from mcplocal.policy import PolicyFollower
from upstream.mcpserver import ListChangedServer, connection_of
from upstream.relay import SESSION_HEADER, Target
from upstream.spec import UpstreamSpec
from upstream.supervisor import Instance, Supervisor, SupervisorSettings, UpstreamError

log = logging.getLogger("mcplocal.proxy")

Headers = Callable[[], Awaitable[dict[str, str]]]


@dataclass(frozen=True)
class Caller:
    """Who is asking, as the enforcer and the audit log name them."""

    subject: str  # User:<name> or McpToken:<sha>
    project: str
    user: str | None = None
    token_name: str | None = None
    token_sha: str | None = None


@dataclass
class ProjectInfo:
    servers: list[str]
    model: ProxyModel
    fetched: float


class Proxy:
    def __init__(
        self,
        mcpd_url: str,
        headers: Headers,
        policy: PolicyFollower,
        pipeline: Pipeline,
        audit: AuditReporter,
        *,
        upstream_settings: SupervisorSettings | None = None,
        project_ttl: float = 5.0,
        listing_ttl: float = 5.0,
        default_model: ProxyModel | None = None,
    ) -> None:
        self.mcpd_url = mcpd_url.rstrip("/")
        self._headers = headers
        self.policy = policy
        self.pipeline = pipeline
        self.audit = audit
        self.upstream_settings = upstream_settings or SupervisorSettings(
            start_timeout=10.0, probe_interval=30.0, tools_ttl=60.0, negative_ttl=5.0
        )
        self.project_ttl = project_ttl
        self.default_model = default_model or ProxyModel()
        self._projects: dict[str, ProjectInfo] = {}
        self._supervisors: dict[str, Supervisor] = {}
        self._tg: TaskGroup | None = None
        self._http: httpx2.AsyncClient | None = None
        # downstream sessions, to tell of a changed tool set (listChanged)
        self._sessions: weakref.WeakKeyDictionary[Connection, Caller] = weakref.WeakKeyDictionary()
        # session id -> its connection, while it lives (listing_json)
        self._followed: weakref.WeakValueDictionary[str, Connection] = weakref.WeakValueDictionary()
        # (subject, project), version -> ((generation, when) of the listing, its wire form)
        self._listing_json: dict[tuple[tuple[str, str], str], tuple[Any, bytes]] = {}
        # (subject, project) -> (generation, when, tools): what each caller was shown
        self._listings: dict[tuple[str, str], tuple[int, float, list[types.Tool]]] = {}
        self._generation = 0  # bumped by anything that may change what a caller sees
        self._names: dict[str, NameMap] = {}  # project -> every exposed name it has had
        self.listing_ttl = listing_ttl

    # -- life -----------------------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Proxy]:
        async with httpx2.AsyncClient(timeout=15.0) as http, anyio.create_task_group() as tg:
            self._http, self._tg = http, tg
            try:
                yield self
            finally:
                with anyio.CancelScope(shield=True):
                    for sup in list(self._supervisors.values()):
                        await sup.stop_all()
                tg.cancel_scope.cancel()
                self._tg = None

    def supervisor(self, project: str) -> Supervisor:
        sup = self._supervisors.get(project)
        if sup is None:
            if self._tg is None:
                raise UpstreamError("mcplocal is shutting down")

            async def load(name: str) -> UpstreamSpec:
                url = f"{self.mcpd_url}/api/v1/servers/{quote(name)}/mcp?project={quote(project)}"
                return UpstreamSpec(name, "http", url=url, headers=await self._headers())

            sup = Supervisor(self.upstream_settings, load)
            sup.on_tools_changed = lambda _name: self.tools_changed(project)
            self._supervisors[project] = sup
            started = anyio.Event()

            async def hold(s: Supervisor = sup) -> None:
                async with s.running():
                    started.set()
                    await anyio.sleep_forever()

            self._tg.start_soon(hold)
        return sup

    # -- the project ------------------------------------------------------------------------

    async def project(self, name: str) -> ProjectInfo:
        info = self._projects.get(name)
        if info is not None and time.monotonic() - info.fetched < self.project_ttl:
            return info
        assert self._http is not None
        try:
            r = await self._http.get(
                f"{self.mcpd_url}/api/v1/projects/{quote(name)}", headers=await self._headers()
            )
            if r.status_code in (403, 404):
                raise UpstreamError(
                    f"project `{name}` not found, or not visible to mcplocal's identity "
                    f"(it needs `role:view,resource:projects,name:{name}`)"
                )
            r.raise_for_status()
            body = r.json()
            model = ProxyModel.from_options(
                body.get("proxyModel") or "passthrough", body.get("proxyOptions") or {}
            )
            info = ProjectInfo(list(body.get("servers") or []), model, time.monotonic())
        except (httpx2.HTTPError, ValueError, KeyError) as exc:
            if info is not None:  # mcpd away for a moment: keep serving what we knew
                log.warning("project %s: keeping the last known servers: %s", name, exc)
                return info
            raise UpstreamError(f"project `{name}`: cannot read it from mcpd: {exc}") from None
        if self._projects.get(name) is not None and self._projects[name].servers != info.servers:
            self._projects[name] = info
            self.tools_changed(name)
        self._projects[name] = info
        return info

    def allowed(self, caller: Caller, server: str, tool: str) -> bool:
        authorizer = self.policy.authorizer
        if authorizer is None:
            return False
        return authorizer.decide(
            caller.subject, caller.project, "tools", f"{server}__{tool}", "run"
        ).allowed

    # -- listing ----------------------------------------------------------------------------

    async def _instances(self, caller: Caller) -> list[tuple[str, Instance]]:
        info = await self.project(caller.project)
        sup = self.supervisor(caller.project)
        out = []
        for server in info.servers:
            try:
                out.append((server, await sup.instance(server)))
            except UpstreamError as exc:
                log.warning("%s", exc)
        return out

    async def list_tools(self, caller: Caller) -> list[types.Tool]:
        """The caller's tools: from the listing cache while nothing that decides it changed
        (policy, an upstream's tools, the project's servers) and for at most ``listing_ttl``."""
        key = (caller.subject, caller.project)
        hit = self._listings.get(key)
        if (
            hit is not None
            and hit[0] == self._generation
            and time.monotonic() - hit[1] < self.listing_ttl
        ):
            return hit[2]
        generation = self._generation
        instances = await self._instances(caller)
        listed: dict[str, list[types.Tool]] = {}

        async def one(server: str, inst: Instance) -> None:
            try:
                listed[server] = await inst.list_tools()
            except UpstreamError as exc:  # a dead upstream hides only its own tools
                log.info("%s", exc)

        async with anyio.create_task_group() as tg:
            for server, inst in instances:
                tg.start_soon(one, server, inst)
        names = self._names.setdefault(caller.project, NameMap())
        tools: list[types.Tool] = []
        for server, _ in instances:
            for tool in listed.get(server, []):
                exposed = names.add(server, tool.name)
                if self.allowed(caller, server, tool.name):
                    tools.append(tool.model_copy(update={"name": exposed}))
        info = await self.project(caller.project)
        if info.model.name != "passthrough":
            tools.append(page_tool())
        self._listings[key] = (generation, time.monotonic(), tools)
        return tools

    async def resolve(self, caller: Caller, exposed: str) -> tuple[str, str] | None:
        names = self._names.get(caller.project)
        target = names.resolve(exposed) if names is not None else None
        if target is None:  # not listed yet (or a new tool): list, then look again
            await self.list_tools(caller)
            target = self._names[caller.project].resolve(exposed)
        return target

    # -- calling ----------------------------------------------------------------------------

    async def relayable(
        self, caller: Caller, message: dict[str, Any], headers: Mapping[str, str]
    ) -> tuple[Target, dict[str, Any], Callable[[dict[str, Any] | None, str | None], None]] | None:
        """The fast lane (upstream/relay) for this ``tools/call``: where to relay
        it, the call as mcpd is to get it (the tool's own name), and what to do when it
        ends (audit); or None, and :meth:`call_tool` answers it (a pipeline to apply, a
        tool unknown or forbidden, an upstream down or not over HTTP)."""
        try:
            info = await self.project(caller.project)
        except UpstreamError:
            return None
        if info.model.name != "passthrough":
            return None
        exposed = message["params"]["name"]
        target = await self.resolve(caller, exposed)
        if target is None or not self.allowed(caller, *target):
            return None
        server, tool = target
        try:
            inst = await self.supervisor(caller.project).instance(server)
        except UpstreamError:
            return None
        relay = inst.relay
        if relay is None or not relay.speaks(headers):
            return None
        began = time.perf_counter()
        request_id = str(message["id"])

        def done(response: dict[str, Any] | None, error: str | None) -> None:
            result = (response or {}).get("result")
            failed = error is not None or not isinstance(result, dict) or result.get("isError")
            outcome = "error" if failed else "allow"
            error = error or _error_of(response)
            self._audit(caller, server, tool, outcome, began, request_id, error)

        params = {**message["params"], "name": tool}
        return relay, {**message, "params": params}, done

    async def call_tool(
        self,
        caller: Caller,
        exposed: str,
        arguments: dict[str, Any] | None,
        progress: ProgressFnT | None = None,
        request_id: str = "",
    ) -> types.CallToolResult:
        info = await self.project(caller.project)
        if exposed == PAGE_TOOL and info.model.name != "passthrough":
            cursor = (arguments or {}).get("cursor")
            if not isinstance(cursor, str):
                raise MCPError(types.INVALID_PARAMS, "`cursor` (a string) is required")
            # a page is shown only to whom may still run the tool that made it
            return await self.pipeline.next_page(
                cursor, allow=lambda server, tool: self.allowed(caller, server, tool)
            )
        target = await self.resolve(caller, exposed)
        if target is None or not self.allowed(caller, *target):
            # an unknown tool and a forbidden one get the same answer: nothing leaks
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {exposed}")
        server, tool = target
        began = time.perf_counter()
        outcome, error = "allow", None
        try:
            inst = await self.supervisor(caller.project).instance(server)
            result = await inst.call_tool(tool, arguments, progress)
            if result.is_error:
                outcome = "error"
            else:
                result = await self.pipeline.apply(info.model, server, tool, result)
            return result
        except UpstreamError as exc:
            outcome, error = "error", str(exc)
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=str(exc))], is_error=True
            )
        except MCPError as exc:
            outcome, error = "error", exc.message
            raise
        finally:
            self._audit(caller, server, tool, outcome, began, request_id, error)

    def _audit(
        self,
        caller: Caller,
        server: str,
        tool: str,
        outcome: str,
        began: float,
        request_id: str,
        error: str | None,
    ) -> None:
        """Report a finished call to mcpd (batched, off the call path)."""
        self.audit.report(
            CallRecord(
                user=caller.user,
                token_name=caller.token_name,
                token_sha=caller.token_sha,
                server=server,
                tool=tool,
                project=caller.project,
                outcome=outcome,
                duration_ms=(time.perf_counter() - began) * 1000,
                request_id=request_id,
                error=error,
            )
        )

    # -- resources and prompts: the union, prompts renamed like tools ------------------------

    async def list_prompts(self, caller: Caller) -> tuple[list[types.Prompt], NameMap]:
        names = NameMap()
        prompts: list[types.Prompt] = []
        for server, inst in await self._instances(caller):
            if not self._may_run(caller, server):
                continue
            try:
                listed = await inst.request("prompts/list", lambda s: s.list_prompts())
            except (UpstreamError, MCPError):
                continue
            for p in listed.prompts:
                prompts.append(p.model_copy(update={"name": names.add(server, p.name)}))
        return prompts, names

    async def get_prompt(
        self, caller: Caller, exposed: str, arguments: dict[str, str] | None
    ) -> types.GetPromptResult:
        _, names = await self.list_prompts(caller)
        target = names.resolve(exposed)
        if target is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {exposed}")
        server, name = target
        inst = await self.supervisor(caller.project).instance(server)
        try:
            return await inst.request("prompts/get", lambda s: s.get_prompt(name, arguments))
        except UpstreamError as exc:
            raise MCPError(types.INTERNAL_ERROR, str(exc)) from None

    async def list_resources(self, caller: Caller) -> tuple[list[types.Resource], dict[str, str]]:
        owners: dict[str, str] = {}
        resources: list[types.Resource] = []
        for server, inst in await self._instances(caller):
            if not self._may_run(caller, server):
                continue
            try:
                listed = await inst.request("resources/list", lambda s: s.list_resources())
            except (UpstreamError, MCPError):
                continue
            for res in listed.resources:
                owners.setdefault(str(res.uri), server)
                resources.append(res)
        return resources, owners

    async def read_resource(self, caller: Caller, uri: str) -> types.ReadResourceResult:
        _, owners = await self.list_resources(caller)
        server = owners.get(uri)
        if server is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown resource: {uri}")
        inst = await self.supervisor(caller.project).instance(server)
        try:
            return await inst.request("resources/read", lambda s: s.read_resource(uri))
        except UpstreamError as exc:
            raise MCPError(types.INTERNAL_ERROR, str(exc)) from None

    def _may_run(self, caller: Caller, server: str) -> bool:
        authorizer = self.policy.authorizer
        return authorizer is not None and bool(
            authorizer.decide(caller.subject, caller.project, "servers", server, "run")
        )

    # -- telling clients that what they see changed ------------------------------------------

    def remember(self, connection: Connection, caller: Caller, sid: str | None = None) -> None:
        self._sessions[connection] = caller
        if sid is not None:
            self._followed[sid] = connection

    def listing_json(self, caller: Caller, version: str | None, sid: str | None) -> bytes | None:
        """The caller's ``tools/list`` result as the SDK puts it on the wire at ``version``,
        from the listing cache while that is fresh; serialized once per listing. For a
        session, only once it is followed for listChanged (its first listing went the SDK
        way, which remembers its connection)."""
        if version not in HANDSHAKE_PROTOCOL_VERSIONS:
            return None
        if sid is not None and sid not in self._followed:
            return None
        key = (caller.subject, caller.project)
        hit = self._listings.get(key)
        if (
            hit is None
            or hit[0] != self._generation
            or time.monotonic() - hit[1] >= self.listing_ttl
        ):
            return None
        done = self._listing_json.get((key, version))
        if done is not None and done[0] == hit[:2]:  # (not the listing itself: kept alive)
            return done[1]
        dumped = types.ListToolsResult(tools=hit[2]).model_dump(
            by_alias=True, mode="json", exclude_none=True
        )
        wire = serialize_server_result("tools/list", version, dumped)
        data = json.dumps(wire, separators=(",", ":")).encode()
        self._listing_json[(key, version)] = (hit[:2], data)
        return data

    def tools_changed(self, project: str | None = None) -> None:
        """Something that decides the visible tools changed (an upstream's list, a policy
        change, a project's servers): re-list for each session and notify where it differs."""
        self._generation += 1
        if self._tg is None:
            return
        for session, caller in list(self._sessions.items()):
            if project is None or caller.project == project:
                self._tg.start_soon(self._notify_if_changed, session, caller)

    async def _notify_if_changed(self, session: Connection, caller: Caller) -> None:
        hit = self._listings.get((caller.subject, caller.project))
        before = {t.name for t in hit[2]} if hit is not None else None
        try:
            tools = await self.list_tools(caller)
            if before is not None and before != {t.name for t in tools}:
                await session.send_tool_list_changed()
        except Exception:  # a closed session, an unreachable mcpd: nothing to tell
            self._sessions.pop(session, None)

    # -- the MCP server ---------------------------------------------------------------------

    def build_server(
        self, caller_of: Callable[[ServerRequestContext[Any]], Caller]
    ) -> McpServer[Any]:
        proxy = self

        def who(ctx: ServerRequestContext[Any]) -> Caller:
            caller = caller_of(ctx)
            headers = getattr(ctx.request, "headers", None)
            sid = headers.get(SESSION_HEADER) if headers is not None else None
            proxy.remember(connection_of(ctx), caller, sid)
            return caller

        async def list_tools(
            ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
        ) -> types.ListToolsResult:
            return types.ListToolsResult(tools=await proxy.list_tools(who(ctx)))

        async def call_tool(
            ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
        ) -> types.CallToolResult:
            token = progress_token_from_params(ctx.params)

            async def progress(progress: float, total: float | None, message: str | None) -> None:
                assert token is not None
                await ctx.session.send_progress_notification(
                    token, progress, total, message, related_request_id=str(ctx.request_id)
                )

            return await proxy.call_tool(
                who(ctx),
                params.name,
                params.arguments,
                progress if token is not None else None,
                request_id=str(ctx.request_id or ""),
            )

        async def list_prompts(
            ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
        ) -> types.ListPromptsResult:
            prompts, _ = await proxy.list_prompts(who(ctx))
            return types.ListPromptsResult(prompts=prompts)

        async def get_prompt(
            ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams
        ) -> types.GetPromptResult:
            return await proxy.get_prompt(who(ctx), params.name, params.arguments)

        async def list_resources(
            ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
        ) -> types.ListResourcesResult:
            resources, _ = await proxy.list_resources(who(ctx))
            return types.ListResourcesResult(resources=resources)

        async def read_resource(
            ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
        ) -> types.ReadResourceResult:
            return await proxy.read_resource(who(ctx), str(params.uri))

        return ListChangedServer(
            "mcplocal",
            version="0.1.0",
            instructions="The tools of your mcpctl project, as <server>__<tool>",
            on_list_tools=list_tools,
            on_call_tool=call_tool,
            on_list_prompts=list_prompts,
            on_get_prompt=get_prompt,
            on_list_resources=list_resources,
            on_read_resource=read_resource,
        )


def _error_of(response: dict[str, Any] | None) -> str | None:
    """A JSON-RPC error's message, for the audit record."""
    error = (response or {}).get("error")
    return str(error.get("message")) if isinstance(error, dict) else None
