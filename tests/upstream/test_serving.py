"""upstream/serving.py's trusted-proxy options, on a real uvicorn: X-Forwarded-For is
believed from the listed peers only (mcpd's MCPD_TRUSTED_PROXIES, mcplocal's
MCPLOCAL_TRUSTED_PROXIES), and from none by default."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest
import uvicorn

from tests.servers.launch import free_port
from upstream.serving import CoalescingTransport, proxy_options


async def whoami(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = str(scope["client"][0]).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def seen_as(trusted: str | None) -> str:
    port = free_port()
    config = uvicorn.Config(whoami, host="127.0.0.1", port=port, log_level="warning")
    for name, value in proxy_options(trusted).items():
        setattr(config, name, value)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.02)
        r = httpx.get(f"http://127.0.0.1:{port}/", headers={"X-Forwarded-For": "203.0.113.9"})
        return r.text
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.parametrize(
    ("trusted", "client"),
    [
        ("", "127.0.0.1"),  # the default of both settings: nobody is believed
        ("10.0.0.0/8", "127.0.0.1"),  # a proxy that is not this peer
        ("127.0.0.1", "203.0.113.9"),  # the peer is the trusted proxy
        (None, "203.0.113.9"),  # uvicorn's own default, which believed any loopback peer
    ],
)
def test_x_forwarded_for_is_believed_from_trusted_proxies_only(
    trusted: str | None, client: str
) -> None:
    assert seen_as(trusted) == client


def test_writes_in_one_step_of_the_loop_leave_as_one() -> None:
    """CoalescingTransport, over a real loopback connection: what one step of the event
    loop writes reaches the real transport as one write (uvicorn writes a response's head,
    each chunk and the chunked end separately: a system call each); a close sends what
    is pending first; writes in different steps stay apart."""

    async def scenario() -> tuple[list[bytes], bytes]:
        loop = asyncio.get_running_loop()
        received = bytearray()
        closed = loop.create_future()

        class Sink(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                received.extend(data)

            def connection_lost(self, exc: Exception | None) -> None:
                closed.set_result(None)

        server = await loop.create_server(Sink, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        written: list[bytes] = []
        real_write = transport.write

        def counted(data: bytes) -> None:
            written.append(bytes(data))
            real_write(data)

        transport.write = counted  # type: ignore[method-assign]
        coalescing = CoalescingTransport(transport)
        coalescing.write(b"HTTP/1.1 200 OK\r\n\r\n")
        coalescing.write(b"5\r\nhello\r\n")
        coalescing.write(b"0\r\n\r\n")
        assert written == []  # (not before this step ends)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        coalescing.write(b"next")
        coalescing.write(b" step")
        coalescing.close()  # flushed first
        await asyncio.wait_for(closed, 5)
        server.close()
        return written, bytes(received)

    written, received = asyncio.run(scenario())
    first = b"HTTP/1.1 200 OK\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert written == [first, b"next step"]
    assert received == first + b"next step"
