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
    """The client connections of each upstream server, to tell them its tools changed."""

    def __init__(self) -> None:
        self._by_server: dict[str, weakref.WeakSet[Connection]] = {}

    def add(self, server: str, ctx: ServerRequestContext[Any]) -> None:
        self._by_server.setdefault(server, weakref.WeakSet()).add(connection_of(ctx))

    async def notify(self, server: str) -> None:
        for connection in list(self._by_server.get(server, ())):
            with contextlib.suppress(Exception):  # a closed connection: nothing to tell
                await connection.send_tool_list_changed()
