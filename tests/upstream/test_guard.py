"""The peer guard (upstream/guard.py): both upstream clients check the address a
connection reached before sending a byte of the request, and mcpd's rules
(mcpd.addresses.Rules.peer) refuse what a rebinding name would reach."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest

from mcpd.addresses import Rules
from upstream.errors import ConnectionLost
from upstream.guard import transport
from upstream.relay import UpstreamHttp
from upstream.supervisor.connect import ssl_context

RULES = Rules(host="127.0.0.1", port=8420, allow=[])


def refuse_loopback(host: str, ip: str, port: int) -> str | None:
    return f"{ip} is loopback" if ip.startswith("127.") else None


async def _listener() -> tuple[asyncio.Server, list[bytes]]:
    """A TCP server that answers 200 to anything and records what it received."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(65536)
        received.append(data)
        if data:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, received


def _port(server: asyncio.Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


def test_the_sdk_paths_client_sends_nothing_to_a_refused_peer() -> None:
    async def flow(guard: Any) -> tuple[str, list[bytes]]:
        server, received = await _listener()
        secret = {"authorization": "Bearer from-a-secret-ref"}
        async with (
            server,
            httpx2.AsyncClient(headers=secret, transport=transport(ssl_context(), guard)) as client,
        ):
            try:
                r = await client.post(f"http://localhost:{_port(server)}/mcp", content=b"{}")
                outcome = str(r.status_code)
            except httpx2.ConnectError as exc:
                outcome = str(exc)
            await asyncio.sleep(0.05)
        return outcome, received

    outcome, received = asyncio.run(flow(refuse_loopback))
    assert "refused to connect to localhost: 127.0.0.1 is loopback" in outcome
    assert not any(received), received  # not a byte of the request, its headers included
    outcome, received = asyncio.run(flow(None))
    assert outcome == "200" and b"from-a-secret-ref" in b"".join(received)


def test_the_fast_lanes_client_sends_nothing_to_a_refused_peer() -> None:
    async def flow(guard: Any) -> tuple[str, list[bytes]]:
        server, received = await _listener()
        async with server:
            up = UpstreamHttp(f"http://localhost:{_port(server)}/mcp", {"x-key": "v"}, None, guard)
            try:
                exchange = await up.post(b"{}")
                outcome = str(exchange.status)
                async for _ in exchange.body():
                    pass
                exchange.release()
            except ConnectionLost as exc:
                outcome = str(exc)
            finally:
                up.close()
            await asyncio.sleep(0.05)
        return outcome, received

    outcome, received = asyncio.run(flow(refuse_loopback))
    assert "refused to connect to localhost: 127.0.0.1 is loopback" in outcome
    assert not any(received), received
    outcome, received = asyncio.run(flow(None))
    assert outcome == "200" and b"x-key: v" in b"".join(received)


@pytest.mark.parametrize(
    ("hostname", "ip", "port", "why"),
    [
        ("rebind.example", "169.254.169.254", 80, "cloud metadata address 169.254.169.254"),
        ("rebind.example", "fe80::1", 80, "link-local"),
        ("rebind.example", "127.0.0.1", 8420, "mcpd's own address"),
        ("rebind.example", "::ffff:127.0.0.1", 8420, "mcpd's own address"),
        ("rebind.example", "127.0.0.1", 8421, None),  # another loopback service
        ("rebind.example", "93.184.215.14", 443, None),
    ],
)
def test_mcpds_rules_refuse_what_a_rebinding_name_reaches(
    hostname: str, ip: str, port: int, why: str | None
) -> None:
    got = RULES.peer(hostname, ip, port)
    if why is None:
        assert got is None
    else:
        assert got is not None and why in got and "MCPD_UPSTREAM_ALLOW" in got


def test_the_operators_allow_list_holds_at_connect_time_too() -> None:
    allowed = Rules(host="127.0.0.1", port=8420, allow=["169.254.0.0/16", "Meta.Internal"])
    assert allowed.peer("x.example", "169.254.169.254", 80) is None
    assert allowed.peer("meta.internal.", "127.0.0.1", 8420) is None
    assert allowed.peer("x.example", "127.0.0.1", 8420) is not None
