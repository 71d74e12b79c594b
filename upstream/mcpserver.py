"""The MCP server side shared by mcpd's per-server endpoint and mcplocal.

``connection_of`` (a request's client connection) is :mod:`upstream.sdk_compat`'s.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any

from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.lowlevel.server import Server as McpServer

from upstream.sdk_compat import connection_of

__all__ = ["ListChangedServer", "Watchers", "connection_of"]


class ListChangedServer(McpServer[Any]):
    """A low-level MCP server that advertises ``listChanged`` for tools, prompts and
    resources: what a proxy shows changes when an upstream or the policy does."""

    def create_initialization_options(
        self, notification_options: NotificationOptions | None = None, *args: Any, **kw: Any
    ) -> Any:
        options = notification_options or NotificationOptions(
            tools_changed=True, prompts_changed=True, resources_changed=True
        )
        return super().create_initialization_options(options, *args, **kw)


class Watchers:
    """The client connections of each upstream server: told that its tools changed, and
    given the upstream's notifications meant for them (:meth:`deliver`): a resource's
    ``updated`` goes to the connections subscribed to it, ``notifications/message`` to
    those that set a log level, a list's ``list_changed`` to every one."""

    def __init__(self) -> None:
        self._by_server: dict[str, weakref.WeakSet[Connection]] = {}
        self._subscribed: dict[tuple[str, str], weakref.WeakSet[Connection]] = {}
        self._logging: dict[str, weakref.WeakSet[Connection]] = {}

    def add(self, server: str, ctx: ServerRequestContext[Any]) -> None:
        self._by_server.setdefault(server, weakref.WeakSet()).add(connection_of(ctx))

    def subscribe(self, server: str, uri: str, ctx: ServerRequestContext[Any], on: bool) -> None:
        """``ctx``'s client (un)subscribed to ``uri`` of ``server``."""
        key = (server, uri)
        watchers = self._subscribed.setdefault(key, weakref.WeakSet())
        if on:
            watchers.add(connection_of(ctx))
        else:
            watchers.discard(connection_of(ctx))

    def subscribed(self, server: str, uri: str) -> bool:
        return bool(self._subscribed.get((server, uri)))

    def logging(self, server: str, ctx: ServerRequestContext[Any]) -> None:
        self._logging.setdefault(server, weakref.WeakSet()).add(connection_of(ctx))

    async def notify(self, server: str) -> None:
        for connection in list(self._by_server.get(server, ())):
            with contextlib.suppress(Exception):  # a closed connection: nothing to tell
                await connection.send_tool_list_changed()

    async def deliver(self, server: str, method: str, params: dict[str, Any] | None) -> None:
        """Pass an upstream notification (not tied to a request in flight) on."""
        if method == "notifications/resources/updated":
            uri = str((params or {}).get("uri", ""))
            targets = list(self._subscribed.get((server, uri), ()))
        elif method == "notifications/message":
            targets = list(self._logging.get(server, ()))
        elif method in LIST_CHANGED:
            targets = list(self._by_server.get(server, ()))
        else:
            return
        for connection in targets:
            with contextlib.suppress(Exception):
                await connection.notify(method, params)


LIST_CHANGED = frozenset(
    {
        "notifications/tools/list_changed",
        "notifications/prompts/list_changed",
        "notifications/resources/list_changed",
    }
)
