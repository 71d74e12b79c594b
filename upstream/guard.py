"""Where an upstream connection may land, checked on the address it actually reached.

mcpd refuses an http server whose URL points at mcpd itself or at link-local / cloud
metadata addresses when the server is written. A name can resolve elsewhere later (DNS
rebinding: a short TTL, then a second answer), so the check runs again on every
connection an upstream client opens: after the TCP connect, on the peer's address, before
a byte of the request (the server's headers, its secretRefs' values) is sent. Both
clients use it: the httpx2 client of the SDK path (a network backend around httpcore2's)
and the fast lane's own (:mod:`upstream.relay.http`).

A guard is a function of (hostname as written, peer IP, peer port) giving why the
connection is refused, or None. mcpd supplies one built from its settings; mcplocal,
whose upstreams are mcpd's own endpoints, none.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from typing import Any

import httpcore2
import httpx2

from upstream import sdk_compat

PeerGuard = Callable[[str, str, int], "str | None"]


class PeerRefused(OSError):
    """The connection reached an address its guard refuses."""


def check_peer(guard: PeerGuard | None, host: str, peer: Any) -> None:
    """Raise :class:`PeerRefused` unless ``guard`` accepts ``peer`` (a socket address)."""
    if guard is None:
        return
    if not peer:
        why: str | None = "its peer address is unknown"
    else:
        why = guard(host, str(peer[0]), int(peer[1]))
    if why is not None:
        raise PeerRefused(f"refused to connect to {host}: {why}")


class _GuardedBackend(httpcore2.AsyncNetworkBackend):
    """httpcore2's network backend, refusing a TCP connection its guard refuses."""

    def __init__(self, inner: httpcore2.AsyncNetworkBackend, guard: PeerGuard) -> None:
        self._inner = inner
        self._guard = guard

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            check_peer(self._guard, host, stream.get_extra_info("server_addr"))
        except PeerRefused as exc:
            await stream.aclose()
            raise httpcore2.ConnectError(str(exc)) from None
        return stream

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        return await self._inner.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def transport(verify: ssl.SSLContext, guard: PeerGuard | None) -> httpx2.AsyncHTTPTransport:
    """An httpx2 transport whose every new connection ``guard`` checks (None: unchecked)."""
    made = httpx2.AsyncHTTPTransport(verify=verify)
    if guard is not None:
        sdk_compat.wrap_network_backend(made, lambda inner: _GuardedBackend(inner, guard))
    return made
