"""CORS for the OAuth endpoints a browser-based MCP client calls itself (the Inspector's web
UI): metadata, registration, token and revocation. Any origin, no credentials - these
endpoints take no cookies (public clients prove themselves with PKCE). The login and consent
pages and the API get no CORS at all."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PATHS = frozenset(
    ("/.well-known/oauth-authorization-server", "/oauth/register", "/oauth/token", "/oauth/revoke")
)
_PREFLIGHT = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
    (b"access-control-allow-headers", b"content-type, authorization, mcp-protocol-version"),
    (b"access-control-max-age", b"600"),
]


class OAuthCorsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in PATHS:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": _PREFLIGHT})
            await send({"type": "http.response.body", "body": b""})
            return

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] != _PREFLIGHT[0][0]]
                message["headers"] = [*headers, _PREFLIGHT[0]]
            await send(message)

        await self.app(scope, receive, with_cors)
