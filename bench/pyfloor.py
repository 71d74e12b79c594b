"""A byte relay in Python: bench/proxy.py's ``pyfloor`` path.

    .venv/bin/python bench/pyfloor.py --port P --upstream http://127.0.0.1:U/mcp

What a proxy hop costs in the stack mcpd and mcplocal serve with - uvicorn with httptools
and uvloop, upstream.serving's coalescing HTTP protocol, one raw ASGI app - before any of
their own work: each POST's body goes to the upstream with the caller's MCP session
headers, over the relay's kept-alive HTTP/1.1 client (upstream.relay.http.UpstreamHttp),
and the upstream's status, content type, session id and body come back as they arrive. No
MCP, no authentication, no authorization, no audit, no metrics, no access log: the floor
of a hop in Python, beside nginx's (the floor of a hop at all).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import uvicorn  # noqa: E402

from upstream.relay.http import SESSION_HEADER, VERSION_HEADER, UpstreamHttp  # noqa: E402
from upstream.serving import CoalescingHttpProtocol  # noqa: E402

FORWARDED = (SESSION_HEADER.encode(), VERSION_HEADER.encode())


def relay_app(upstream: str) -> Any:
    clients: dict[tuple[bytes, ...], UpstreamHttp] = {}  # one per session's headers

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":  # (the bench's readiness check)
            await send({"type": "http.response.start", "status": 405, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = dict(scope["headers"])
        key = tuple(headers.get(name, b"") for name in FORWARDED)
        http = clients.get(key)
        if http is None:
            given = {n.decode(): v.decode() for n, v in zip(FORWARDED, key, strict=True) if v}
            http = clients[key] = UpstreamHttp(upstream, given, None)
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        exchange = await http.post(bytes(body))
        try:
            back = [(b"content-type", exchange.headers.get("content-type", "").encode())]
            if SESSION_HEADER in exchange.headers:
                back.append((FORWARDED[0], exchange.headers[SESSION_HEADER].encode()))
            await send({"type": "http.response.start", "status": exchange.status, "headers": back})
            async for chunk in exchange.body():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            exchange.release()

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the upstream's MCP endpoint URL")
    args = parser.parse_args()
    uvicorn.run(
        relay_app(args.upstream),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        http=CoalescingHttpProtocol,
    )


if __name__ == "__main__":
    main()
