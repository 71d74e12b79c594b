"""Calls: ``tools/call`` through the SDK path (:meth:`Calls.call_tool`) or the fast lane
(:meth:`Calls.relayable`), each audited to mcpd once it ends."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import mcp_types as types
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError

from mcplocal.audit import CallRecord
from mcplocal.pipeline import PAGE_TOOL
from mcplocal.proxy.catalog import Caller, Catalog
from upstream.relay import Target
from upstream.supervisor import UpstreamError


class Calls(Catalog):
    async def relayable(
        self, caller: Caller, message: dict[str, Any], headers: Mapping[str, str]
    ) -> tuple[Target, dict[str, Any], Callable[[dict[str, Any] | None, str | None], None]] | None:
        """The fast lane (upstream/relay) for this ``tools/call``: where to relay
        it, the call as mcpd is to get it (the tool's own name), and what to do when it
        ends (audit); or None, and :meth:`call_tool` answers it (a pipeline to apply, a
        tool unknown or forbidden, an upstream down or not over HTTP)."""
        try:
            info = await self.project(caller.project)
        except UpstreamError:
            return None
        if info.model.name != "passthrough":
            return None
        exposed = message["params"]["name"]
        target = await self.resolve(caller, exposed)
        if target is None or not self.allowed(caller, *target):
            return None
        server, tool = target
        try:
            inst = await self.supervisor(caller.project).instance(server)
        except UpstreamError:
            return None
        relay = inst.relay
        if relay is None or not relay.speaks(headers):
            return None
        began = time.perf_counter()
        request_id = str(message["id"])

        def done(response: dict[str, Any] | None, error: str | None) -> None:
            result = (response or {}).get("result")
            failed = error is not None or not isinstance(result, dict) or result.get("isError")
            outcome = "error" if failed else "allow"
            error = error or _error_of(response)
            self._audit(caller, server, tool, outcome, began, request_id, error)

        params = {**message["params"], "name": tool}
        return relay, {**message, "params": params}, done

    async def call_tool(
        self,
        caller: Caller,
        exposed: str,
        arguments: dict[str, Any] | None,
        progress: ProgressFnT | None = None,
        request_id: str = "",
    ) -> types.CallToolResult:
        info = await self.project(caller.project)
        if exposed == PAGE_TOOL and info.model.name != "passthrough":
            cursor = (arguments or {}).get("cursor")
            if not isinstance(cursor, str):
                raise MCPError(types.INVALID_PARAMS, "`cursor` (a string) is required")
            # a page is shown only to whom may still run the tool that made it
            return await self.pipeline.next_page(
                cursor, allow=lambda server, tool: self.allowed(caller, server, tool)
            )
        target = await self.resolve(caller, exposed)
        if target is None or not self.allowed(caller, *target):
            # an unknown tool and a forbidden one get the same answer: nothing leaks
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {exposed}")
        server, tool = target
        began = time.perf_counter()
        outcome, error = "allow", None
        try:
            inst = await self.supervisor(caller.project).instance(server)
            result = await inst.call_tool(tool, arguments, progress)
            if result.is_error:
                outcome = "error"
            else:
                result = await self.pipeline.apply(info.model, server, tool, result)
            return result
        except UpstreamError as exc:
            outcome, error = "error", str(exc)
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=str(exc))], is_error=True
            )
        except MCPError as exc:
            outcome, error = "error", exc.message
            raise
        finally:
            self._audit(caller, server, tool, outcome, began, request_id, error)

    def _audit(
        self,
        caller: Caller,
        server: str,
        tool: str,
        outcome: str,
        began: float,
        request_id: str,
        error: str | None,
    ) -> None:
        """Report a finished call to mcpd (batched, off the call path)."""
        self.audit.report(
            CallRecord(
                user=caller.user,
                token_name=caller.token_name,
                token_sha=caller.token_sha,
                server=server,
                tool=tool,
                project=caller.project,
                outcome=outcome,
                duration_ms=(time.perf_counter() - began) * 1000,
                request_id=request_id,
                error=error,
            )
        )


def _error_of(response: dict[str, Any] | None) -> str | None:
    """A JSON-RPC error's message, for the audit record."""
    error = (response or {}).get("error")
    return str(error.get("message")) if isinstance(error, dict) else None
