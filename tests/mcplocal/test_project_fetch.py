"""mcplocal's view of a project: calls that find it stale together wait for one fetch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from client import AsyncMcpdClient
from mcplocal.proxy import Proxy
from tests.mcpd.test_instances import make_settings, serve_mcpd

ROUTE = 'route="/api/v1/projects/{name}"'


def _project_gets(base: str) -> int:
    """How many ``GET /api/v1/projects/{name}`` mcpd has answered (its own metrics)."""
    total = 0
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        counted = line.startswith("mcpd_http_requests_total{") and 'method="GET"' in line
        if counted and ROUTE in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def test_concurrent_calls_on_a_stale_project_share_one_fetch(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'mcpd.db'}", tmp_path)
    with serve_mcpd(settings) as m:
        m.ok("POST", "/projects", json={"name": "web"})
        proxy = Proxy(m.base, None, None, None, None, project_ttl=60.0)  # type: ignore[arg-type]

        async def main() -> tuple[list[object], list[object]]:
            async with AsyncMcpdClient(m.base, m.admin) as mcpd:
                proxy._mcpd = mcpd
                first = await asyncio.gather(*(proxy.project("web") for _ in range(16)))
                again = await asyncio.gather(*(proxy.project("web") for _ in range(16)))
                return list(first), list(again)

        before = _project_gets(m.base)
        first, again = asyncio.run(main())
        assert _project_gets(m.base) - before == 1  # sixteen callers, one GET
        assert all(info is first[0] for info in first + again)  # then from the cache
        assert first[0].servers == []  # type: ignore[attr-defined]
