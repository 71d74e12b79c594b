"""Telling clients that what they see changed: the connections remembered per caller
(``notifications/tools/list_changed`` where a re-listing differs), and the serialized
listing the fast lane answers ``tools/list`` with while it is fresh."""

from __future__ import annotations

import json
import time
import weakref
from typing import Any

import mcp_types as types
from mcp.server.connection import Connection
from mcp_types.methods import serialize_server_result
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from mcplocal.proxy.catalog import Caller, Catalog


class Notify(Catalog):
    # downstream sessions, to tell of a changed tool set (listChanged)
    _sessions: weakref.WeakKeyDictionary[Connection, Caller]
    # session id -> its connection, while it lives (listing_json)
    _followed: weakref.WeakValueDictionary[str, Connection]
    # (subject, project), version -> ((generation, when) of the listing, its wire form)
    _listing_json: dict[tuple[tuple[str, str], str], tuple[Any, bytes]]

    def remember(self, connection: Connection, caller: Caller, sid: str | None = None) -> None:
        self._sessions[connection] = caller
        if sid is not None:
            self._followed[sid] = connection

    def listing_json(self, caller: Caller, version: str | None, sid: str | None) -> bytes | None:
        """The caller's ``tools/list`` result as the SDK puts it on the wire at ``version``,
        from the listing cache while that is fresh; serialized once per listing. For a
        session, only once it is followed for listChanged (from its ``initialized``, or
        from its first request that went the SDK way: each remembers its connection)."""
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
        super().tools_changed(project)
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
