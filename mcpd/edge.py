"""mcpd's edge: the one raw ASGI layer in front of every route, doing in one pass what used
to be five stacked middlewares (each a coroutine frame and a ``send`` wrapper per request):

1. **bounds** (:mod:`mcpd.bodylimit`): a body is capped, timed and its JSON nesting checked
   before anything reads it; a refusal (413, 408, 400) is answered here, as before with
   no request id and no metrics;
2. **CORS** of the OAuth endpoints (:mod:`mcpd.oauthcors`): their preflight answered here,
   their answers given ``Access-Control-Allow-Origin``;
3. **the request id** (:mod:`mcpd.requestid`): ``request.state.request_id``, and the
   response's ``X-Request-Id``;
4. **metrics** (:mod:`mcpd.metrics`): each request counted and timed by method, route
   template and status;
5. **the MCP fast path** (:class:`mcpd.api.instances.McpFastPath`): a relayed ``tools/call``
   to a server's MCP endpoint, from a caller known without the database, answered without
   FastAPI's routing (the same checks as the route's, in the same order); anything else
   goes on to FastAPI, its body replayed.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcpd.bodylimit import REFUSED, BodyLimits, read_bounded
from mcpd.metrics import Metrics, route_template
from mcpd.oauthcors import ALLOW_ORIGIN, preflight
from mcpd.oauthcors import PATHS as CORS_PATHS
from mcpd.requestid import HEADER as REQUEST_ID
from mcpd.requestid import request_id_of
from upstream.relay import replay


class Edge:
    def __init__(
        self, app: ASGIApp, *, limits: BodyLimits, metrics: Metrics, fast_path: Any
    ) -> None:
        self.app = app
        self.limits = limits
        self.metrics = metrics
        self.fast_path = fast_path  # McpFastPath: .wants(scope), .answer(scope, receive, body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await read_bounded(self.limits, scope, receive, send)
        if body is REFUSED:
            return
        cors = scope["path"] in CORS_PATHS
        if cors and scope["method"] == "OPTIONS":
            await preflight(send)
            return
        rid = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = rid
        echoed = (REQUEST_ID, rid.encode("latin-1"))
        start = time.perf_counter()
        status = 500  # an exception escaping the app becomes a 500 further out

        async def _send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                drop = (REQUEST_ID, ALLOW_ORIGIN[0]) if cors else (REQUEST_ID,)
                headers = [h for h in message.get("headers") or () if h[0].lower() not in drop]
                headers.append(echoed)
                if cors:
                    headers.append(ALLOW_ORIGIN)
                message["headers"] = headers
            await send(message)

        try:
            if isinstance(body, bytes):
                receive = replay(body, receive)
                if self.fast_path.wants(scope):
                    response = await self.fast_path.answer(scope, receive, body)
                    if response is not None:
                        await response(scope, receive, _send)
                        return
            await self.app(scope, receive, _send)
        finally:
            self.metrics.observe_request(
                scope["method"], route_template(scope), status, time.perf_counter() - start
            )


__all__ = ["Edge"]
