"""The steps through the MCP SDK: ``initialize``, ``tools/list`` and ``tools/call``.

``initialize`` goes through the SDK's :class:`ClientSession` (protocol version, server
name and version, capabilities). ``tools/list`` and ``tools/call`` are sent raw through
the session's own dispatcher: the SDK's typed ``tools/list`` result rejects a bad schema
as a whole without naming the tool, and its ``call_tool`` first re-lists the tools
(through that strict parser) and so would also time that. The SDK turns a 401 into a bare
JSON-RPC -32603, so a response hook remembers the refusal and the step reports it.
The SDK and httpx2 are imported inside the methods (see :mod:`cli.testmcp`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from cli.errors import DENIED, ERROR
from cli.testmcp.probe import connect_reason
from cli.testmcp.report import Run, Step, clip, elapsed_ms, our_version, plural, printable
from cli.testmcp.schema import Listing, check_tools

if TYPE_CHECKING:
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.shared.dispatcher import CallOptions
    from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
    from mcp.types import ContentBlock, InitializeResult

__all__ = ["SessionSteps"]

UNSUPPORTED_PROTOCOL_VERSION: Final = -32022
MAX_PAGES: Final = 100


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _preview(content: list[ContentBlock]) -> str:
    from mcp.types import TextContent

    parts = [c.text if isinstance(c, TextContent) else f"[{c.type}]" for c in content]
    return clip(" ".join(parts)) if parts else "(no content)"


class SessionSteps:
    """The SDK steps of one run, added to ``run``'s report."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self._refusal: httpx2.Response | None = None

    async def _remember_refusal(self, response: httpx2.Response) -> None:
        """An httpx2 response hook: the SDK turns a 401 into a bare JSON-RPC -32603."""
        if response.status_code in (401, 403):
            self._refusal = response

    async def check(self) -> None:
        """Run ``initialize``, then ``tools/list`` and the planned call, in one session."""
        import httpx2
        from mcp.client.session import ClientSession
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
        from mcp.types import Implementation

        headers = {"authorization": f"Bearer {self.run.token}"} if self.run.token else {}
        hooks = {"response": [self._remember_refusal]}
        me = Implementation(name="mcpctl", version=our_version())
        start = time.perf_counter()
        try:
            async with (
                httpx2.AsyncClient(
                    headers=headers, timeout=self.run.timeout, event_hooks=hooks
                ) as http,
                streamable_http_client(self.run.url, http_client=http) as (read, write),
            ):
                # Our own dispatcher, so that tools/list and tools/call can be sent raw.
                dispatcher: JSONRPCDispatcher[Any] = JSONRPCDispatcher(read, write)
                async with ClientSession(dispatcher=dispatcher, client_info=me) as session:
                    init = await self._initialize(session)
                    if init is None:
                        return
                    listing = await self._list_tools(dispatcher, init)
                    if self.run.call is not None:
                        await self._call_tool(dispatcher, init, listing)
        except Exception as exc:  # the transport's own failures arrive as exception groups
            planned = ["initialize", "tools/list"] + (["tools/call"] if self.run.call else [])
            done = {s.name for s in self.run.report.steps}
            name = next((n for n in planned if n not in done), "close")
            why, code = self._describe(exc)
            self.run.add(Step(name, False, elapsed_ms(start), why), code)

    def _describe(self, exc: BaseException) -> tuple[str, int]:
        import httpx2
        from mcp.shared.exceptions import MCPError
        from pydantic import ValidationError

        exc = _leaf(exc)
        if self._refusal is not None:
            challenge = self._refusal.headers.get("www-authenticate")
            why = f"HTTP {self._refusal.status_code}"
            why += f", WWW-Authenticate: {challenge}" if challenge else ""
            return why, DENIED
        if isinstance(exc, TimeoutError | httpx2.TimeoutException):
            return f"no answer within {self.run.timeout:g}s", ERROR
        if isinstance(exc, httpx2.ConnectError):
            return f"cannot connect to {self.run.where}: {connect_reason(exc)}", ERROR
        if isinstance(exc, MCPError):
            if exc.code == UNSUPPORTED_PROTOCOL_VERSION:
                supported = exc.data.get("supported") if isinstance(exc.data, dict) else None
                return f"the server has no initialize handshake; it speaks {supported}", ERROR
            return f"{clip(exc.message)} (JSON-RPC error {exc.code})", ERROR
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            return f"invalid result from the server: {where}: {first['msg']}", ERROR
        return clip(str(exc)) or exc.__class__.__name__, ERROR

    def _fail(
        self, name: str, start: float, exc: Exception, extra: dict[str, Any] | None = None
    ) -> None:
        why, code = self._describe(exc)
        self.run.add(Step(name, False, elapsed_ms(start), why, extra or {}), code)

    async def _initialize(self, session: ClientSession) -> InitializeResult | None:
        import anyio

        start = time.perf_counter()
        try:
            with anyio.fail_after(self.run.timeout):
                init = await session.initialize()
        except Exception as exc:
            self._fail("initialize", start, exc)
            return None
        caps = init.capabilities
        offered = [
            name
            for name in ("tools", "resources", "prompts", "logging", "completions")
            if getattr(caps, name) is not None
        ]
        server = init.server_info
        extra = {
            "protocol_version": init.protocol_version,
            "server": {"name": server.name, "version": server.version},
            "capabilities": offered,
        }
        detail = (
            f"protocol {init.protocol_version}, server {clip(server.name, 60)} "
            f"{clip(server.version, 30)}, capabilities: {', '.join(offered) or 'none'}"
        )
        self.run.add(Step("initialize", True, elapsed_ms(start), detail, extra))
        return init

    async def _list_tools(
        self, dispatcher: JSONRPCDispatcher[Any], init: InitializeResult
    ) -> Listing:
        import anyio

        if init.capabilities.tools is None:
            self.run.add(Step("tools/list", True, 0.0, "skipped: the server offers no tools"))
            return Listing()
        start = time.perf_counter()
        opts: CallOptions = {"headers": {"mcp-protocol-version": init.protocol_version}}
        tools: list[Any] = []
        notes: list[str] = []
        cursor: Any = None
        try:
            for _ in range(MAX_PAGES):
                params = {"cursor": cursor} if cursor is not None else None
                with anyio.fail_after(self.run.timeout):
                    page = await dispatcher.send_raw_request("tools/list", params, opts)
                if not isinstance(page.get("tools"), list):
                    raise ValueError("the result has no `tools` list")
                tools.extend(page["tools"])
                cursor = page.get("nextCursor")
                if cursor is None:
                    break
            else:
                notes.append(f"warning: stopped after {MAX_PAGES} pages")
        except Exception as exc:
            self._fail("tools/list", start, exc)
            return Listing()
        ms = elapsed_ms(start)
        listing = check_tools(tools)
        names = listing.names
        detail = plural(len(tools), "tool")
        if names:
            detail += ": " + ", ".join(printable(n) for n in names[:10])
            detail += ", ..." if len(names) > 10 else ""
        if listing.problems:
            detail += "; " + plural(len(listing.problems), "problem")
        extra = {
            "count": len(tools),
            "tools": names,
            "problems": listing.problems,
            "warnings": listing.warnings,
        }
        notes += [f"problem: {p}" for p in listing.problems]
        notes += [f"warning: {w}" for w in listing.warnings]
        self.run.add(Step("tools/list", not listing.problems, ms, detail, extra, notes))
        return listing

    async def _call_tool(
        self, dispatcher: JSONRPCDispatcher[Any], init: InitializeResult, listing: Listing
    ) -> None:
        import anyio
        from mcp.types import CallToolResult

        assert self.run.call is not None
        name, arguments = self.run.call
        shown = f"`{printable(name)}`"
        opts: CallOptions = {"headers": {"mcp-protocol-version": init.protocol_version}}
        start = time.perf_counter()
        try:
            with anyio.fail_after(self.run.timeout):
                raw = await dispatcher.send_raw_request(
                    "tools/call", {"name": name, "arguments": arguments}, opts
                )
            ms = elapsed_ms(start)
            result = CallToolResult.model_validate(raw, by_name=False)
        except Exception as exc:
            self._fail("tools/call", start, exc, {"tool": name})
            return
        preview = _preview(result.content)
        extra = {"tool": name, "is_error": result.is_error, "preview": preview}
        ok = not result.is_error
        if result.is_error:
            detail = f"{shown} returned an error (isError): {preview}"
        elif name in listing.with_output_schema and result.structured_content is None:
            ok = False
            detail = f"{shown} declares an outputSchema but returned no structuredContent"
        else:
            detail = f"{shown}: {preview}"
        notes = [] if name in listing.names else [f"warning: {shown} is not in tools/list"]
        self.run.add(Step("tools/call", ok, ms, detail, extra, notes))
