"""Streamable HTTP servers for `mcpctl test mcp`, one per ``--kind``, on 127.0.0.1.

- ``demo``: an `MCPServer` with the tools ``add``, ``echo``, ``sleep`` (``cancelled`` says
  how many sleeps were cancelled), ``count`` (reports progress) and ``fail``;
- ``many``: an `MCPServer` with 50 tools ``tool_0`` ... ``tool_49``;
  with ``--token T`` every request to ``/mcp`` needs ``Authorization: Bearer T``
  and is otherwise answered 401 with an RFC 9728 ``resource_metadata`` challenge;
- ``time``: the ``mcp-server-time`` package's server (stdio-only on its own) on HTTP;
- ``sloppy``: a hand-written JSON-response server whose tool list breaks the spec's rules;
- ``lingering``: the same, answering in SSE streams that stay open after the answer;
- ``notfound``: plain HTTP that answers 404 to everything;
- ``hang``: accepts connections and never answers.

Run: ``python -m tests.servers.mcp_http --kind demo --port 8123 [--token T]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

MCP_PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource/mcp"


def demo_server() -> MCPServer:
    server = MCPServer("demo", version="1.2.3", instructions="a test server")

    @server.tool(description="Add two integers")
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool(description="Echo the text back")
    def echo(text: str) -> str:
        return text

    @server.tool(description="Sleep for a while, then say so")
    async def sleep(seconds: float) -> str:
        try:
            await anyio.sleep(seconds)
        except anyio.get_cancelled_exc_class():
            CANCELLED.append(seconds)  # the caller's cancellation reached this server
            raise
        return f"slept {seconds}s"

    @server.tool(description="How many sleeps were cancelled so far")
    def cancelled() -> int:
        return len(CANCELLED)

    @server.tool(description="Count to n, reporting progress at each step")
    async def count(n: int, ctx: Context) -> str:
        for i in range(1, n + 1):
            await ctx.report_progress(i, n, f"step {i}")
        return f"counted to {n}"

    @server.tool(description="Fail, as a tool may")
    def fail() -> str:
        raise ValueError("this tool always fails")

    return server


CANCELLED: list[float] = []


SLOPPY_TOOLS: list[Any] = [
    {"name": "fine", "inputSchema": {"type": "object", "properties": {}}},
    {"name": "has.dot", "inputSchema": {"type": "object"}},
    {"name": "bad name!", "inputSchema": {"type": "object"}},
    {"name": "not_object", "inputSchema": {"type": "string"}},
    {"name": "no_schema"},
    {"name": "fine", "inputSchema": {"type": "object"}},
]


def sloppy_app(*, linger: bool = False) -> Starlette:
    """A hand-written JSON-response MCP server whose tool list breaks the spec's rules, to
    be reported tool by tool (the SDK's server validates its own results and won't send it)."""

    async def endpoint(request: Request) -> Response:
        if request.method == "DELETE":
            return Response(status_code=200)
        if request.method != "POST":
            return Response(status_code=405)
        message = await request.json()
        if "id" not in message:
            return Response(status_code=202)
        method = message.get("method")
        result: dict[str, Any]
        if method == "initialize":
            result = {
                "protocolVersion": "2025-06-18",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "sloppy", "version": "0.0.1"},
            }
        elif method == "tools/list":
            result = {"tools": SLOPPY_TOOLS}
        elif method == "tools/call":
            result = {"content": [{"type": "text", "text": "done"}], "isError": False}
        else:
            error = {"code": -32601, "message": "Method not found"}
            return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "error": error})
        body = {"jsonrpc": "2.0", "id": message["id"], "result": result}
        headers = {"mcp-session-id": "sloppy-session"}
        if not linger:
            return JSONResponse(body, headers=headers)

        async def events() -> AsyncIterator[bytes]:
            yield f"event: message\ndata: {json.dumps(body)}\n\n".encode()
            await anyio.sleep(3600)  # the spec only says SHOULD close the stream

        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    return Starlette(routes=[Route(MCP_PATH, endpoint, methods=["GET", "POST", "DELETE"])])


def many_server(count: int = 50) -> MCPServer:
    """``count`` small tools ``tool_0`` ... (for listing benchmarks)."""
    server = MCPServer("many", version="0.0.1")

    def make(i: int) -> Any:
        def tool(x: int = 0) -> int:
            return x + i

        return tool

    for i in range(count):
        server.add_tool(make(i), name=f"tool_{i}", description=f"Tool number {i}")
    return server


def time_server() -> MCPServer:
    from mcp_server_time.server import create_server  # type: ignore[import-untyped]

    server: MCPServer = create_server("UTC")
    return server


class BearerGate:
    """Answer 401 with a ``WWW-Authenticate`` challenge unless the bearer token matches."""

    def __init__(self, app: ASGIApp, *, token: str, base_url: str) -> None:
        self.app = app
        self.token = token
        self.base_url = base_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == METADATA_PATH:
            doc = {"resource": self.base_url + MCP_PATH, "authorization_servers": []}
            await _send(send, 200, json.dumps(doc).encode(), [])
            return
        headers = dict(scope["headers"])
        got = headers.get(b"authorization", b"").decode("latin-1")
        if hmac.compare_digest(got.encode(), f"Bearer {self.token}".encode()):
            await self.app(scope, receive, send)
            return
        challenge = f'Bearer resource_metadata="{self.base_url}{METADATA_PATH}"'
        if got:
            challenge = f'Bearer error="invalid_token", {challenge.removeprefix("Bearer ")}'
        body = json.dumps(
            {"error": "invalid_token", "error_description": "authentication required"}
        )
        await _send(send, 401, body.encode(), [(b"www-authenticate", challenge.encode())])


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def build_app(kind: str, port: int, token: str | None) -> ASGIApp:
    if kind == "notfound":
        return Starlette(
            routes=[], exception_handlers={404: lambda *_: PlainTextResponse("nope", 404)}
        )
    if kind in ("sloppy", "lingering"):
        return sloppy_app(linger=kind == "lingering")
    server = {"demo": demo_server, "many": many_server, "time": time_server}[kind]()
    app: ASGIApp = server.streamable_http_app(streamable_http_path=MCP_PATH)
    if token:
        app = BearerGate(app, token=token, base_url=f"http://127.0.0.1:{port}")
    return app


async def hang(port: int) -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(3600)

    srv = await asyncio.start_server(swallow, "127.0.0.1", port)
    async with srv:
        await srv.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--kind",
        choices=["demo", "many", "time", "sloppy", "lingering", "notfound", "hang"],
        default="demo",
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token")
    args = parser.parse_args()
    if args.kind == "hang":
        asyncio.run(hang(args.port))
        return
    app: Any = build_app(args.kind, args.port, args.token)
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, log_level="warning", timeout_graceful_shutdown=2
    )


if __name__ == "__main__":
    main()
