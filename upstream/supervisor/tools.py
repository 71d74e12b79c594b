"""The tools cache: an instance's ``tools/list``, kept ``tools_ttl`` (failures ``negative_ttl``).

One fetch at a time: callers asking at once wait for the one in flight and share its
answer, or its failure (N fetches at once kept mcplocal's memory ~25 MB higher:
bench/proxy.py). Dropped when the upstream says its tools changed and when it restarts.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.shared.exceptions import MCPError

from upstream.errors import UpstreamError
from upstream.supervisor.settings import SupervisorSettings

if TYPE_CHECKING:
    from upstream.supervisor.instance import Instance

MAX_PAGES = 100  # bounded, whatever the upstream's cursors do


async def fetch_tools(session: ClientSession) -> list[types.Tool]:
    """Every page of the server's ``tools/list``."""
    tools: list[types.Tool] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.send_request(
            types.ListToolsRequest(params=params), types.ListToolsResult
        )
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


class ToolsCache:
    def __init__(self, settings: SupervisorSettings) -> None:
        self.settings = settings
        self._tools: list[types.Tool] | None = None
        self._tools_at = 0.0
        self._error: str | None = None
        self._error_at = 0.0
        self._fetching: anyio.Event | None = None  # set when a tools/list in flight ends

    def invalidate(self) -> None:
        self._tools = None
        self._error = None

    async def get(self, inst: Instance, *, refresh: bool = False) -> list[types.Tool]:
        """``inst``'s tools, from the cache or fetched through ``inst.request``."""
        now = time.monotonic()
        if not refresh:
            if self._tools is not None and now - self._tools_at < self.settings.tools_ttl:
                return self._tools
            if self._error and now - self._error_at < self.settings.negative_ttl:
                raise UpstreamError(self._error)

        fetching = self._fetching
        if fetching is not None:  # one fetch at a time: the others wait for its answer
            await fetching.wait()
            if self._tools is not None:
                return self._tools
            if self._error:
                raise UpstreamError(self._error)

        self._fetching = done = anyio.Event()
        try:
            tools = await inst.request("tools/list", fetch_tools)
        except (UpstreamError, MCPError) as exc:
            self._error = (
                str(exc)
                if isinstance(exc, UpstreamError)
                else (f"server `{inst.name}`: tools/list failed: {exc.message}")
            )
            self._error_at = time.monotonic()
            raise UpstreamError(self._error) from None
        else:
            self._tools, self._tools_at, self._error = tools, time.monotonic(), None
            return tools
        finally:
            self._fetching = None
            done.set()
