"""Running an ASGI app under uvicorn with a graceful stop (mcpd serve, mcplocal serve).

On SIGTERM uvicorn stops accepting connections and waits for open ones. The MCP SDK answers
in Server-Sent Events through sse-starlette, which by default ends every SSE stream at once
on that signal: a ``tools/call`` in flight would lose its answer. Here streams get ``grace``
seconds to finish first (a call in flight completes), then the remaining ones (idle
``GET`` streams) are ended, and after ``timeout`` seconds uvicorn stops waiting anyway.

Once started (the app's lifespan done), everything allocated so far - modules, models,
the loaded policy - is moved out of the garbage collector's sight (``gc.freeze``): a full
collection otherwise walks it all, an ~80 ms pause of every request in flight about once
a second under load (bench/mcpd.py's p99 went from 80 ms to 26 ms).

Each connection's writes are coalesced (:class:`CoalescingTransport`): uvicorn writes a
response's head, each body chunk and the end of a chunked body with one ``write`` each, and
on loopback every ``write`` is a system call that also runs the receiver's side of TCP
(the writes were the largest single item in a wall-clock profile of a relayed call in
mcpd). What one step of the event loop writes goes out as one ``write`` at the end of
that step, so nothing waits longer than it did.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from upstream import sdk_compat

GRACE_SECONDS = 5.0
TIMEOUT_SECONDS = 10


class CoalescingTransport(asyncio.Transport):
    """A connection's transport whose writes within one step of the event loop leave as one
    ``write`` of the real transport, at the end of that step (or at once, before a close).
    Everything else is the real transport's."""

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        self._pending: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._flush()
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


class CoalescingHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (httptools), writing through a :class:`CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport))


def proxy_options(trusted_proxies: str | None) -> dict[str, Any]:
    """uvicorn's options for ``trusted_proxies``: believe X-Forwarded-* from those peers
    only, and from none when it is empty (None: uvicorn's default, every loopback peer)."""
    if trusted_proxies is None:
        return {}
    listed = [p.strip() for p in trusted_proxies.split(",") if p.strip()]
    return {"proxy_headers": bool(listed), "forwarded_allow_ips": listed or None}


def serve(
    app: Any,
    host: str,
    port: int,
    *,
    grace: float = GRACE_SECONDS,
    trusted_proxies: str | None = None,
) -> None:
    """Serve ``app``; ``trusted_proxies`` (comma-separated addresses/CIDRs) are the only
    peers whose X-Forwarded-For/-Proto uvicorn believes (None: uvicorn's default, loopback)."""
    import uvicorn

    sdk_compat.keep_sse_streams_on_exit()
    drain = threading.Timer(grace, sdk_compat.end_sse_streams)
    drain.daemon = True

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            gc.collect()
            gc.freeze()

        def handle_exit(self, sig: int, frame: Any) -> None:
            if not drain.is_alive() and not sdk_compat.sse_streams_ending():
                drain.start()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        timeout_graceful_shutdown=TIMEOUT_SECONDS,
        http=CoalescingHttpProtocol,
        **proxy_options(trusted_proxies),
    )
    Server(config).run()
