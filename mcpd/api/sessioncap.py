"""The per-subject cap on open MCP sessions of mcpd's per-server endpoint.

The SDK binds each session to ``<subject>|<server>|<project>`` (mcpd.api.instances); a
subject holding ``max_mcp_sessions_per_subject`` open sessions (over all servers and
projects) is refused a new one with a 429 saying so, until it closes one (``DELETE`` with
its ``Mcp-Session-Id``) or the SDK ends an idle one.
"""

from __future__ import annotations

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from mcpd.errors import TooManyRequests
from mcpd.principal import Principal
from mcpd.settings import Settings
from upstream import sdk_compat


def check_session_cap(
    manager: StreamableHTTPSessionManager, principal: Principal, settings: Settings
) -> None:
    cap = settings.max_mcp_sessions_per_subject
    if sdk_compat.sessions_owned(manager, f"{principal.subject}|") >= cap:
        raise TooManyRequests(
            f"{principal.display} already holds {cap} open MCP sessions (the most one "
            "subject may hold); close one with DELETE and its Mcp-Session-Id first"
        )
