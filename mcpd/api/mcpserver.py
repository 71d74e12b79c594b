"""The MCP server mcpd runs behind each per-server endpoint (the SDK path), and the audit
of one ``tools/call`` (:class:`CallAudit`, used by the SDK path and the fast lane alike).

Its handlers check each tool, prompt and resource (``run`` on ``tools/<server>__<tool>``,
``prompts/<server>__<prompt>``, ``resources/<server>__<uri>``: a deny on one hides it from
listings and answers it like one that does not exist, the deny audited) and forward to the
supervised upstream session. :mod:`mcpd.api.instances` guards the route and hands requests
to the session manager built here.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import mcp_types as types
from fastapi import Request
from mcp.client.session import ClientSession
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server as McpServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params

from authz import Decision
from mcpd import audit
from mcpd.api.deps import request_id
from mcpd.principal import Principal
from mcpd.runtime import Runtime
from mcpd.settings import Settings
from upstream.mcpserver import ListChangedServer, Watchers
from upstream.relay import (
    AUDITED_HEADER,
    error_result,
)
from upstream.supervisor import UpstreamError

log = logging.getLogger("mcpd.mcp")
T = TypeVar("T")


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
