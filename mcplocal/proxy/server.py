"""The :class:`Proxy`: one MCP server whose handlers answer from the catalog, the calls,
the aggregated prompts and resources, and remember each caller's connection (notify)."""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server as McpServer
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params

from client import BearerAuth
from mcplocal.audit import AuditReporter
from mcplocal.pipeline import Pipeline, ProxyModel
from mcplocal.policy import PolicyFollower
from mcplocal.proxy.calls import Calls
from mcplocal.proxy.catalog import Caller
from mcplocal.proxy.notify import Notify
from mcplocal.proxy.resources import Resources
from upstream.mcpserver import ListChangedServer, Watchers, connection_of
from upstream.relay import SESSION_HEADER
from upstream.supervisor import SupervisorSettings

STATELESS_SUBSCRIBE = (
    "resource subscriptions need an MCP session: this mcplocal is stateless "
    "(MCPLOCAL_STATELESS), read the resource again instead"
)


class Proxy(Calls, Resources, Notify):
    def __init__(
        self,
        mcpd_url: str,
        auth: BearerAuth | str,
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
        self._auth = BearerAuth(auth) if isinstance(auth, str) else auth
        self.policy = policy
        self.pipeline = pipeline
        self.audit = audit
        self.upstream_settings = upstream_settings or SupervisorSettings(
            start_timeout=10.0, probe_interval=30.0, tools_ttl=60.0, negative_ttl=5.0
        )
        self.project_ttl = project_ttl
        self._project_fetches = {}
        self.default_model = default_model or ProxyModel()
        self._projects = {}
        self._supervisors = {}
        self._tg = None
        self._mcpd = None
        # downstream sessions, to tell of a changed tool set (listChanged)
        self._sessions = weakref.WeakKeyDictionary()
        # session id -> its connection, while it lives (listing_json)
        self._followed = weakref.WeakValueDictionary()
        # (subject, project), version -> ((generation, when) of the listing, its wire form)
        self._listing_json = {}
        # (subject, project) -> (generation, when, tools): what each caller was shown
        self._listings = {}
        self._generation = 0  # bumped by anything that may change what a caller sees
        self._names = {}  # project -> every exposed name it has had
        self.listing_ttl = listing_ttl
        self.watchers = Watchers()  # subscriptions and log levels of the callers' sessions

    def build_server(
        self, caller_of: Callable[[ServerRequestContext[Any]], Caller], *, stateless: bool = False
    ) -> McpServer[Any]:
        """The MCP server of mcplocal. ``stateless``: no session, so no stream to send a
        resource's updates on later: ``resources/subscribe`` is refused, saying why."""
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

        async def list_templates(
            ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
        ) -> types.ListResourceTemplatesResult:
            templates, _ = await proxy.list_resource_templates(who(ctx))
            return types.ListResourceTemplatesResult(resource_templates=templates)

        async def complete(
            ctx: ServerRequestContext[Any], params: types.CompleteRequestParams
        ) -> types.CompleteResult:
            return await proxy.complete(who(ctx), params)

        async def subscribe(
            ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams
        ) -> types.EmptyResult:
            if stateless:
                raise MCPError(types.METHOD_NOT_FOUND, STATELESS_SUBSCRIBE)
            return await proxy.subscribe(who(ctx), str(params.uri), ctx, True)

        async def unsubscribe(
            ctx: ServerRequestContext[Any], params: types.UnsubscribeRequestParams
        ) -> types.EmptyResult:
            if stateless:
                raise MCPError(types.METHOD_NOT_FOUND, STATELESS_SUBSCRIBE)
            return await proxy.subscribe(who(ctx), str(params.uri), ctx, False)

        async def set_level(
            ctx: ServerRequestContext[Any], params: types.SetLevelRequestParams
        ) -> types.EmptyResult:
            return await proxy.set_level(who(ctx), params, ctx)

        async def initialized(ctx: ServerRequestContext[Any], _: types.NotificationParams) -> None:
            # followed for listChanged from the start: so even a session's first tools/list
            # may come from the serialized listing cache (notify.listing_json)
            who(ctx)

        with warnings.catch_warnings():  # (logging is deprecated only from protocol 2026-07-28)
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            server = ListChangedServer(
                "mcplocal",
                version="0.1.0",
                instructions="The tools of your mcpctl project, as <server>__<tool>",
                on_list_tools=list_tools,
                on_call_tool=call_tool,
                on_list_prompts=list_prompts,
                on_get_prompt=get_prompt,
                on_list_resources=list_resources,
                on_list_resource_templates=list_templates,
                on_read_resource=read_resource,
                on_subscribe_resource=subscribe,
                on_unsubscribe_resource=unsubscribe,
                on_completion=complete,
                on_set_logging_level=set_level,
            )
        server.add_notification_handler(
            "notifications/initialized", types.NotificationParams, initialized
        )
        return server
