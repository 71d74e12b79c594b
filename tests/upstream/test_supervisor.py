"""The supervisor (upstream/supervisor) on its own, against a real http upstream.

Instances reached through mcpd's per-server endpoint: tests/mcpd/test_instances.py.
"""

from __future__ import annotations

from typing import Any

import anyio

from tests.servers.launch import http_server
from upstream.spec import UpstreamSpec
from upstream.supervisor import Supervisor, SupervisorSettings, UpstreamError


def test_concurrent_listings_share_one_fetch() -> None:
    """Callers asking an instance for its tools at once wait for one ``tools/list``
    upstream (N fetches at once kept mcplocal's memory ~25 MB higher: bench/proxy.py),
    and share its failure too."""
    with http_server("many") as (port, upstream):

        async def flow() -> tuple[list[int], int, list[str], int]:
            async def load(name: str) -> UpstreamSpec:
                return UpstreamSpec(name, "http", url=f"http://127.0.0.1:{port}/mcp")

            sup = Supervisor(SupervisorSettings(negative_ttl=5.0), load)
            async with sup.running():
                inst = await sup.instance("many")
                await inst.ready_session()
                fetches = 0
                request = inst.request

                async def counting(what: str, send: Any) -> Any:
                    nonlocal fetches
                    fetches += what == "tools/list"
                    return await request(what, send)

                inst.request = counting  # type: ignore[method-assign]
                counts: list[int] = []
                async with anyio.create_task_group() as tg:
                    for _ in range(10):
                        tg.start_soon(lambda: _count(inst, counts))
                ok_fetches = fetches
                upstream.kill()
                upstream.wait()
                inst.invalidate_tools()
                errors: list[str] = []

                async def failing() -> None:
                    try:
                        await inst.list_tools()
                    except UpstreamError as exc:
                        errors.append(str(exc))

                fetches = 0
                async with anyio.create_task_group() as tg:
                    for _ in range(5):
                        tg.start_soon(failing)
                return counts, ok_fetches, errors, fetches

        counts, ok_fetches, errors, failed_fetches = anyio.run(flow)
        assert counts == [50] * 10 and ok_fetches == 1
        assert len(errors) == 5 and len(set(errors)) == 1 and "many" in errors[0]
        assert failed_fetches == 1


async def _count(inst: Any, into: list[int]) -> None:
    into.append(len(await inst.list_tools()))
