"""Calls: ``tools/call`` through the SDK path (:meth:`Calls.call_tool`) or the fast lane
(:meth:`Calls.relayable`), each leaving exactly one audit record: allowed (``allow``, or
``error`` when it failed) or refused (``deny``), with the deciding policy line and the
policy revision. The record is on disk (the audit spool) before the call is answered; a
call whose record cannot be written is refused, or its result withheld, never answered
unaudited."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

import anyio
import mcp_types as types
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError

from mcplocal.audit import CallRecord, SpoolFull
from mcplocal.pipeline import PAGE_TOOL
from mcplocal.proxy.catalog import Caller, Catalog
from upstream.relay import OnDone, Target, error_result
from upstream.supervisor import UpstreamError

log = logging.getLogger("mcplocal.proxy")

UNAUDITED = "mcplocal cannot audit this call: {}; the call is refused"
WITHHELD = "mcplocal could not write this call's audit record ({}): its result is withheld"


class Calls(Catalog):
    async def relayable(
        self, caller: Caller, message: dict[str, Any], headers: Mapping[str, str]
    ) -> tuple[Target, dict[str, Any], OnDone] | None:
        """The fast lane (upstream/relay) for this ``tools/call``: where to relay
        it, the call as mcpd is to get it (the tool's own name), and what to do when it
        ends (audit, before the result goes out); or None, and :meth:`call_tool` answers it
        (a pipeline to apply, a tool unknown or forbidden, an upstream down or not over
        HTTP, a full audit spool)."""
        if self.audit.full:
            return None
        try:
            info = await self.project(caller.project)
        except UpstreamError:
            return None
        if info.model.name != "passthrough":
            return None
        exposed = message["params"]["name"]
        target = await self.resolve(caller, exposed)
        if target is None:
            return None
        decision = self.decide(caller, *target)
        if not decision.allowed:
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
        record_id, revision = str(uuid.uuid4()), self.policy.revision

        async def done(response: dict[str, Any] | None, error: str | None) -> Any:
            result = (response or {}).get("result")
            failed = error is not None or not isinstance(result, dict) or result.get("isError")
            outcome = "error" if failed else "allow"
            error = error or _error_of(response)
            try:
                await self._audit(
                    caller, server, tool, outcome, began, request_id, error,
                    reason=decision.reason, revision=revision, record_id=record_id,
                )  # fmt: skip
            except (SpoolFull, OSError) as exc:
                log.error("%s", WITHHELD.format(exc))
                return error_result(message["id"], WITHHELD.format(exc))
            return None

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
        if self.audit.full:  # refused before anything: a call is never answered unaudited
            raise MCPError(types.INTERNAL_ERROR, UNAUDITED.format(self.audit.refuse()))
        began = time.perf_counter()
        revision = self.policy.revision
        try:
            info = await self.project(caller.project)
        except UpstreamError as exc:  # not even the project's servers: failed, audited so
            server, _, tool = exposed.partition("__")
            await self._unrun(caller, server, tool or exposed, "error", began, request_id,
                              None, revision, error=str(exc))  # fmt: skip
            raise
        if exposed == PAGE_TOOL and info.model.name != "passthrough":
            cursor = (arguments or {}).get("cursor")
            if not isinstance(cursor, str):
                raise MCPError(types.INVALID_PARAMS, "`cursor` (a string) is required")
            # a page is shown only to whom may still run the tool that made it
            try:
                page = await self.pipeline.next_page(
                    cursor, allow=lambda server, tool: self.allowed(caller, server, tool)
                )
            except MCPError as exc:
                await self._unrun(caller, "mcplocal", "next_page", "error", began, request_id,
                                  "a page of an earlier call's result", revision,
                                  error=exc.message)  # fmt: skip
                raise
            await self._audit(caller, "mcplocal", "next_page", "allow", began, request_id,
                              None, reason="a page of an earlier call's result",
                              revision=revision)  # fmt: skip
            return page
        target = await self.resolve(caller, exposed)
        if target is None:
            server, _, tool = exposed.partition("__")
            await self._unrun(caller, server, tool or exposed, "deny", began, request_id,
                              "no such tool", revision)  # fmt: skip
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {exposed}")
        decision = self.decide(caller, *target)
        server, tool = target
        if not decision.allowed:
            await self._unrun(
                caller, server, tool, "deny", began, request_id, decision.reason, revision
            )
            # an unknown tool and a forbidden one get the same answer: nothing leaks
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {exposed}")
        outcome, error = "allow", None
        result: types.CallToolResult | None = None
        failure: MCPError | None = None
        try:
            inst = await self.supervisor(caller.project).instance(server)
            result = await inst.call_tool(tool, arguments, progress)
            if result.is_error:
                outcome = "error"
            else:
                result = await self.pipeline.apply(info.model, server, tool, result)
        except UpstreamError as exc:
            outcome, error = "error", str(exc)
            result = types.CallToolResult(
                content=[types.TextContent(type="text", text=str(exc))], is_error=True
            )
        except MCPError as exc:
            outcome, error, failure = "error", exc.message, exc
        finally:
            if result is None and failure is None:  # cancelled, or an unexpected error
                outcome, error = "error", error or "the call did not finish"
            try:
                with anyio.CancelScope(shield=True):
                    await self._audit(
                        caller, server, tool, outcome, began, request_id, error,
                        reason=decision.reason, revision=revision,
                    )  # fmt: skip
            except (SpoolFull, OSError) as exc:
                log.error("%s", WITHHELD.format(exc))
                result, failure = None, MCPError(types.INTERNAL_ERROR, WITHHELD.format(exc))
        if failure is not None:
            raise failure
        assert result is not None
        return result

    async def _unrun(
        self,
        caller: Caller,
        server: str,
        tool: str,
        outcome: str,
        began: float,
        request_id: str,
        reason: str | None,
        revision: str | None,
        error: str | None = None,
    ) -> None:
        """Audit a call that did not run: refused (``deny``), or failed before it could
        be decided (``error``); answered so whether or not its record is written."""
        try:
            await self._audit(caller, server or "-", tool or "-", outcome, began, request_id,
                              error, reason=reason, revision=revision)  # fmt: skip
        except (SpoolFull, OSError) as exc:
            log.error("the audit record of a call that did not run is lost: %s", exc)

    async def _audit(
        self,
        caller: Caller,
        server: str,
        tool: str,
        outcome: str,
        began: float,
        request_id: str,
        error: str | None,
        *,
        reason: str | None,
        revision: str | None,
        record_id: str | None = None,
    ) -> None:
        """The call's record, on disk in the spool before this returns."""
        record = CallRecord(
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
            reason=reason,
            policy_revision=revision,
            **({"id": record_id} if record_id is not None else {}),
        )
        await self.audit.report(record)


def _error_of(response: dict[str, Any] | None) -> str | None:
    """A JSON-RPC error's message, for the audit record."""
    error = (response or {}).get("error")
    return str(error.get("message")) if isinstance(error, dict) else None
