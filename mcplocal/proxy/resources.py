"""Resource templates, completion, subscriptions and logging, aggregated over the project's
servers the caller may run.

* templates: each server's, their names prefixed like tools (``<server>__<name>``), their
  ``uriTemplate`` unchanged; ``resources/read`` of a URI no server lists goes to the server
  whose template matches it (RFC 6570 level 1-2: ``{var}`` one path segment, ``{+var}``
  anything), the first in the project's order;
* ``completion/complete``: a prompt ref by its exposed name, a template ref by its URI
  template, each to its server (an unknown one is answered like an unknown prompt);
* ``resources/subscribe``/``unsubscribe``: to the resource's server; its
  ``notifications/resources/updated`` reach the connections subscribed (``watchers``);
* ``logging/setLevel``: to every such server; their log messages reach the connections
  that set a level. Notifications not tied to a request reach only those connections.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import mcp_types as types
from mcp.client.session import ClientSession
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError

from mcplocal.names import NameMap
from mcplocal.proxy.aggregate import Aggregate
from mcplocal.proxy.catalog import Caller
from upstream.mcpserver import Watchers
from upstream.supervisor import UpstreamError

T = TypeVar("T")
_VAR = re.compile(r"\{([+#]?)[A-Za-z0-9_.,]+\}")


def template_regex(template: str) -> re.Pattern[str]:
    """A URI template as a pattern its URIs match (RFC 6570 simple and reserved expansion)."""
    out, at = [], 0
    for m in _VAR.finditer(template):
        out.append(re.escape(template[at : m.start()]))
        out.append(".+" if m.group(1) else "[^/?#]+")
        at = m.end()
    out.append(re.escape(template[at:]))
    return re.compile("".join(out) + r"\Z")


class Resources(Aggregate):
    watchers: Watchers

    async def list_resource_templates(
        self, caller: Caller
    ) -> tuple[list[types.ResourceTemplate], list[tuple[str, str]]]:
        """The templates the caller may use, and (server, uriTemplate) in listing order."""
        names = NameMap()
        templates: list[types.ResourceTemplate] = []
        owners: list[tuple[str, str]] = []
        for server, inst in await self._instances(caller):
            if not self._may_run(caller, server):
                continue
            try:
                listed = await inst.request(
                    "resources/templates/list", lambda s: s.list_resource_templates()
                )
            except (UpstreamError, MCPError):
                continue
            for t in listed.resource_templates:
                templates.append(t.model_copy(update={"name": names.add(server, t.name)}))
                owners.append((server, t.uri_template))
        return templates, owners

    async def owner_of(self, caller: Caller, uri: str) -> str | None:
        """The server a URI is read from: the one listing it, else one whose template fits."""
        _, listed = await self.list_resources(caller)
        if uri in listed:
            return listed[uri]
        _, templates = await self.list_resource_templates(caller)
        for server, template in templates:
            if template_regex(template).match(uri):
                return server
        return None

    async def resource_owner(self, caller: Caller, uri: str, method: str) -> str:
        """The server of a URI the caller may run; else the error of an unknown resource
        (a refusal audited)."""
        server = await self.owner_of(caller, uri)
        if server is not None and not self.may_use(caller, "resources", server, uri):
            await self.refused(caller, "resources", server, uri, method)
            server = None
        if server is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown resource: {uri}", data={"uri": uri})
        return server

    async def read_resource(self, caller: Caller, uri: str) -> types.ReadResourceResult:
        server = await self.resource_owner(caller, uri, "resources/read")
        return await self._forward(caller, server, "resources/read", lambda s: s.read_resource(uri))

    async def complete(
        self, caller: Caller, params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        ref = params.ref
        if isinstance(ref, types.PromptReference):
            target = await self.prompt_target(caller, ref.name, "completion/complete")
            server = target[0]
            upstream_ref: Any = ref.model_copy(update={"name": target[1]})
        else:
            _, templates = await self.list_resource_templates(caller)
            found = next((s for s, t in templates if t == ref.uri), None)
            if found is None:
                raise MCPError(types.INVALID_PARAMS, f"Unknown resource template: {ref.uri}")
            server, upstream_ref = found, ref
        request = types.CompleteRequest(params=params.model_copy(update={"ref": upstream_ref}))
        return await self._forward(
            caller,
            server,
            "completion/complete",
            lambda s: s.send_request(request, types.CompleteResult),
        )

    async def subscribe(
        self, caller: Caller, uri: str, ctx: ServerRequestContext[Any], on: bool
    ) -> types.EmptyResult:
        server = await self.resource_owner(
            caller, uri, "resources/subscribe" if on else "resources/unsubscribe"
        )
        key = f"{caller.project}/{server}"
        self.watchers.subscribe(key, uri, ctx, on)
        if not on and self.watchers.subscribed(key, uri):
            return types.EmptyResult()  # another caller still is: the upstream stays so
        request: Any = (
            types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri))
            if on
            else types.UnsubscribeRequest(params=types.UnsubscribeRequestParams(uri=uri))
        )
        method = "resources/subscribe" if on else "resources/unsubscribe"
        return await self._forward(
            caller, server, method, lambda s: s.send_request(request, types.EmptyResult)
        )

    async def set_level(
        self, caller: Caller, params: types.SetLevelRequestParams, ctx: ServerRequestContext[Any]
    ) -> types.EmptyResult:
        request = types.SetLevelRequest(params=params)
        for server, inst in await self._instances(caller):
            if not self._may_run(caller, server):
                continue
            self.watchers.logging(f"{caller.project}/{server}", ctx)
            try:
                await inst.request(
                    "logging/setLevel", lambda s: s.send_request(request, types.EmptyResult)
                )
            except (UpstreamError, MCPError):
                continue  # one server that cannot: the others still log at that level
        return types.EmptyResult()

    def upstream_notified(
        self, project: str, server: str, method: str, params: dict[str, Any] | None
    ) -> None:
        if self._tg is not None:
            self._tg.start_soon(self.watchers.deliver, f"{project}/{server}", method, params)

    async def _forward(
        self, caller: Caller, server: str, what: str, send: Callable[[ClientSession], Awaitable[T]]
    ) -> T:
        inst = await self.supervisor(caller.project).instance(server)
        try:
            return await inst.request(what, send)
        except UpstreamError as exc:
            raise MCPError(types.INTERNAL_ERROR, str(exc)) from None
