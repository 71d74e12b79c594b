"""CORS for the OAuth endpoints a browser-based MCP client calls itself (the Inspector's web
UI): metadata, registration, token and revocation. Any origin, no credentials - these
endpoints take no cookies (public clients prove themselves with PKCE). The login and consent
pages and the API get no CORS at all. Applied by :mod:`mcpd.edge`."""

from __future__ import annotations

from starlette.types import Send

PATHS = frozenset(
    ("/.well-known/oauth-authorization-server", "/oauth/register", "/oauth/token", "/oauth/revoke")
)
ALLOW_ORIGIN = (b"access-control-allow-origin", b"*")
_PREFLIGHT = [
    ALLOW_ORIGIN,
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
    (b"access-control-allow-headers", b"content-type, authorization, mcp-protocol-version"),
    (b"access-control-max-age", b"600"),
]


async def preflight(send: Send) -> None:
    """The answer to an ``OPTIONS`` on one of :data:`PATHS`."""
    await send({"type": "http.response.start", "status": 204, "headers": _PREFLIGHT})
    await send({"type": "http.response.body", "body": b""})
