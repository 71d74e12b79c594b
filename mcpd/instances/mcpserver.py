"""The MCP server side shared by mcpd's per-server endpoint and mcplocal."""

from __future__ import annotations

import contextlib
import weakref
from typing import Any

from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.lowlevel.server import Server as McpServer


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


def connection_of(ctx: ServerRequestContext[Any]) -> Connection:
    """The client's connection (its standalone stream), which outlives the request.

    ``ctx.session`` is made afresh for each request; the SDK exposes the connection it
    wraps only as ``_connection``."""
    connection: Connection = ctx.session._connection
    return connection


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
