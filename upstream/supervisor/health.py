"""Health: an instance's probes while it is RUNNING.

By default a ``tools/list`` through the real path (refreshing the tools cache) every
``probe_interval``; a server's health check may name a tool to call instead, or none (a
ping). ``probe_failures`` failures in a row drop the session: the instance starts again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import anyio
import mcp_types as types

from upstream.errors import UpstreamError, describe

if TYPE_CHECKING:
    from upstream.supervisor.instance import Instance


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


async def probe_loop(inst: Instance) -> None:
    """Probe ``inst`` until it has failed too often (then drop its session) or is cancelled."""
    check = inst.spec.health
    interval = check.interval_seconds if check else inst.settings.probe_interval
    timeout = check.timeout_seconds if check else inst.settings.probe_timeout
    failures = 0
    while True:
        await anyio.sleep(interval)
        try:
            with anyio.fail_after(timeout):
                await probe(inst)
        except Exception as exc:
            failures += 1
            inst.health = "unhealthy"
            inst.last_error = f"health probe failed: {describe(exc) or 'timeout'}"
            inst.log.append(inst.last_error, source="mcpd")
            if failures >= inst.settings.probe_failures:
                inst.drop(f"{failures} health probes failed in a row")
                return
        else:
            failures = 0
            inst.health = "healthy"
        inst.last_probe_at = now()


async def probe(inst: Instance) -> None:
    session = inst.session
    if session is None:
        raise UpstreamError("not connected")
    check = inst.spec.health
    if check is None:  # the default liveness probe: tools/list through the real path
        await inst.list_tools(refresh=True)
    elif check.tool:
        result = await session.send_request(
            types.CallToolRequest(params=types.CallToolRequestParams(name=check.tool)),
            types.CallToolResult,
        )
        if result.is_error:
            raise UpstreamError(f"health check tool `{check.tool}` returned an error")
    else:
        await session.send_ping()
