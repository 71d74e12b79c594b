"""The relay's upstream side: POSTs over kept-alive HTTP/1.1 connections.

asyncio streams and httptools' parser: a relayed call costs about a quarter of the CPU it
costs through an httpx2.AsyncClient making the same POST.
The connection is direct: where the process's proxy environment (``HTTP_PROXY``,
``HTTPS_PROXY``, ``ALL_PROXY``, less ``NO_PROXY``) sends an upstream URL through a proxy,
:func:`proxy_for` says so, and the instance opens no fast lane to it: its calls take the
SDK path, whose httpx2 client goes through the proxy.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

import httptools

from upstream.errors import ConnectionLost, RelayError
from upstream.guard import PeerGuard, PeerRefused, check_peer
from upstream.spec import LiveAuth

SESSION_HEADER = "mcp-session-id"
VERSION_HEADER = "mcp-protocol-version"
#: sent by a proxy that audits the calls it makes itself (mcplocal): mcpd, which checks the
#: sender holds the ``proxy`` operation, then records no second audit record of them
AUDITED_HEADER = "x-mcpctl-audited-by"
IDLE_SECONDS = 2.0  # a kept connection unused this long is closed (servers close after ~5 s)
MAX_IDLE = 64


def _head(request_line: str, netloc: str, headers: Mapping[str, str]) -> bytes:
    lines = [request_line, f"host: {netloc}", *(f"{k}: {v}" for k, v in headers.items())]
    return "\r\n".join(lines).encode("latin-1") + b"\r\n"


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url`` (as httpx2's ``trust_env`` reads it:
    the scheme's proxy or ``ALL_PROXY``, unless ``NO_PROXY`` covers the host), or None
    when ``url`` is reached directly."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy:
        return None
    netloc = parts.netloc.rpartition("@")[2]
    if netloc and urllib.request.proxy_bypass(netloc):
        return None
    return str(proxy)


class _Response:
    """httptools' callbacks for one response."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.chunks: deque[bytes] = deque()
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.headers_done = True
        self.keep_alive = self.parser.should_keep_alive()  # (only known until the end)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(bytes(body))

    def on_message_complete(self) -> None:
        self.complete = True


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.idle_since = time.monotonic()

    def usable(self) -> bool:
        return (
            not self.reader.at_eof()
            and not self.writer.is_closing()
            and time.monotonic() - self.idle_since < IDLE_SECONDS
        )

    def close(self) -> None:
        self.writer.close()


class Exchange:
    """One POST's response: its status and headers, then its body as it arrives."""

    def __init__(self, pool: UpstreamHttp, conn: _Conn, resp: _Response) -> None:
        self._pool, self._resp = pool, resp
        self._conn: _Conn | None = conn
        self.status = int(resp.parser.get_status_code())
        self.headers = resp.headers

    @property
    def ready(self) -> bool:
        """Whether :meth:`read` has its answer at hand (a part of the body, or its end):
        it need not wait, nor be timed."""
        return bool(self._resp.chunks) or self._resp.complete

    @property
    def complete(self) -> bool:
        """Whether the body has been received to its end."""
        return self._resp.complete

    async def read(self) -> bytes | None:
        """The next part of the body as it arrives; None at its end."""
        resp = self._resp
        while not resp.chunks:
            if resp.complete:
                return None
            if self._conn is None:
                raise RelayError("the answer was abandoned")
            data = await self._conn.reader.read(65536)
            if not data:
                raise ConnectionLost("the upstream closed the connection mid-answer")
            resp.parser.feed_data(data)
        return resp.chunks.popleft()

    async def body(self) -> AsyncIterator[bytes]:
        while (chunk := await self.read()) is not None:
            yield chunk

    def release(self) -> None:
        """Back to the pool if the answer was read to its end, else closed."""
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        if self._resp.complete and self._resp.keep_alive:
            self._pool.give_back(conn)
        else:
            conn.close()


class UpstreamHttp:
    """POSTs JSON-RPC to one Streamable HTTP endpoint, with fixed headers (the server's
    configured ones, its session id, its protocol version), and those ``live`` gives now
    (a credential renewed while the session lives)."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        ssl_context: ssl.SSLContext | None,
        guard: PeerGuard | None = None,
        *,
        live: LiveAuth | None = None,
    ) -> None:
        parts = urlsplit(url)
        self._guard = guard
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = (
            (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
        )
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._netloc = parts.netloc.rpartition("@")[2]
        self._fixed = {k.lower(): v for k, v in headers.items()}
        self._live = live
        self._shown: Mapping[str, str] | None = None  # what ``live`` gave the heads below
        self._heads(dict(live.headers()) if live is not None else {})
        self._idle: list[_Conn] = []
        self.closed = False

    def _heads(self, extra: Mapping[str, str]) -> None:
        own = {**self._fixed, **{k.lower(): v for k, v in extra.items()}}
        for name, value in own.items():
            if any(c in name + value for c in "\r\n\0"):
                raise ValueError(f"header {name!r} holds a line break")
        post = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        target, netloc = self._target, self._netloc
        self._head = _head(f"POST {target} HTTP/1.1", netloc, {**post, **own})
        self._get_head = _head(
            f"GET {target} HTTP/1.1", netloc, {"accept": "text/event-stream", **own}
        )
        self._shown = extra

    def _refresh(self) -> None:
        """Rebuild the heads when the live headers changed (a renewed credential)."""
        if self._live is not None:
            now = self._live.headers()
            if now != self._shown:
                self._heads(dict(now))

    async def renewed(self) -> bool:
        """After a 401: whether a fresh credential is there to send the request again with."""
        if self._live is None or self._shown is None:
            return False
        try:
            return await self._live.renew(self._shown)
        except Exception:  # the renewal failed: the 401 stands
            return False

    async def _connect(self) -> _Conn:
        try:
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.ssl, limit=1 << 20
            )
        except OSError as exc:
            raise ConnectionLost(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        try:
            check_peer(self._guard, self.host, writer.get_extra_info("peername"))
        except PeerRefused as exc:
            writer.close()
            raise ConnectionLost(str(exc)) from None
        return _Conn(reader, writer)

    def give_back(self, conn: _Conn) -> None:
        if self.closed or len(self._idle) >= MAX_IDLE:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)

    def close(self) -> None:
        self.closed = True
        while self._idle:
            self._idle.pop().close()

    async def post(self, body: bytes) -> Exchange:
        """Send ``body``; return once the response's headers are in."""
        self._refresh()
        return await self._send(self._head + b"content-length: %d\r\n\r\n" % len(body) + body)

    async def resume(self, last_event_id: str) -> Exchange:
        """Resume a stream the upstream closed mid-answer: a GET with ``Last-Event-ID``
        (the upstream replays what followed that event, SEP-1699)."""
        if any(c in last_event_id for c in "\r\n\0"):
            raise RelayError("the upstream sent an event id holding a line break")
        line = f"last-event-id: {last_event_id}\r\n\r\n".encode("latin-1", "replace")
        self._refresh()
        return await self._send(self._get_head + line)

    async def _send(self, request: bytes) -> Exchange:
        if self.closed:
            raise RelayError("the upstream session is closed")
        for _ in range(2):
            reused = False
            conn = None
            while self._idle:
                candidate = self._idle.pop()
                if candidate.usable():
                    conn, reused = candidate, True
                    break
                candidate.close()
            if conn is None:
                conn = await self._connect()
            resp = _Response()
            received = False
            try:
                conn.writer.write(request)
                while not resp.headers_done:
                    data = await conn.reader.read(65536)
                    if not data:
                        raise ConnectionResetError("closed by the upstream")
                    received = True
                    resp.parser.feed_data(data)
            except (OSError, httptools.HttpParserError) as exc:
                conn.close()
                # a kept connection the server closed meanwhile: it never saw the request
                if reused and not received and isinstance(exc, OSError):
                    continue
                raise ConnectionLost(
                    f"{self.host}:{self.port}: {exc or type(exc).__name__}"
                ) from None
            except BaseException:
                conn.close()
                raise
            return Exchange(self, conn, resp)
        raise ConnectionLost(f"{self.host}:{self.port}: the connection keeps closing")
