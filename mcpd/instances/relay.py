"""The fast lane for ``tools/call``: JSON-RPC relayed as bytes, not through two SDK stacks.

Through the SDK, a call crossing mcpd (or mcplocal) is parsed and validated by an SDK
server, re-sent by an SDK client over httpx, and its answer parsed, validated and
serialized twice more: about 4 ms of CPU per call here, more than the client and the
upstream server spend together. When nothing about a call needs the SDK, it is relayed:

* the caller's POST holds one ``tools/call`` request, on a session the SDK opened for
  this caller (``owns_session``), at the protocol version the upstream session speaks;
* the upstream is reached over HTTP (``Instance.relay``, set while RUNNING): the request
  goes to it on the upstream session mcpd already holds, under an id of the relay's own
  (callers' ids would collide there), over kept-alive HTTP/1.1 connections
  (``UpstreamHttp``: asyncio streams and httptools' parser, ~20x less CPU than httpx);
* what the upstream sends back on that POST - progress notifications, then the result -
  is passed on as it arrives, the result under the caller's id again.

Anything else (another method, a batch, a stdio upstream, an odd header, a tool the
caller may not run) takes the SDK path, which answers it, errors included, as before. A
caller that goes away mid-call has its request cancelled upstream.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httptools
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive

SESSION_HEADER = "mcp-session-id"
VERSION_HEADER = "mcp-protocol-version"
IDLE_SECONDS = 2.0  # a kept connection unused this long is closed (servers close after ~5 s)
MAX_IDLE = 64
MAX_MESSAGE = 32 * 1024 * 1024  # one message from the upstream, at most (bytes)
SSE_HEADERS = {"cache-control": "no-cache, no-transform"}


class RelayError(Exception):
    """The upstream could not be reached, or answered something that is not MCP."""


class ConnectionLost(RelayError):
    """The upstream cannot be reached, or its connection broke: its session must be opened
    again (the instance is dropped, as the SDK path does on a lost connection)."""


class SessionGone(ConnectionLost):
    """The upstream no longer knows the session (404)."""


# -- the upstream side: HTTP/1.1 over kept-alive connections ---------------------------------


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

    async def body(self) -> AsyncIterator[bytes]:
        resp = self._resp
        while True:
            while resp.chunks:
                yield resp.chunks.popleft()
            if resp.complete:
                return
            if self._conn is None:
                raise RelayError("the answer was abandoned")
            data = await self._conn.reader.read(65536)
            if not data:
                raise ConnectionLost("the upstream closed the connection mid-answer")
            resp.parser.feed_data(data)

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
    configured ones, its session id, its protocol version)."""

    def __init__(
        self, url: str, headers: Mapping[str, str], ssl_context: ssl.SSLContext | None
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = (
            (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
        )
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = parts.netloc.rpartition("@")[2]
        lines = [f"POST {target} HTTP/1.1", f"host: {netloc}"]
        fixed = {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
        }
        for name, value in {**fixed, **{k.lower(): v for k, v in headers.items()}}.items():
            if any(c in name + value for c in "\r\n\0"):
                raise ValueError(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}")
        self._head = "\r\n".join(lines).encode("latin-1") + b"\r\n"
        self._idle: list[_Conn] = []
        self.closed = False

    async def _connect(self) -> _Conn:
        try:
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.ssl, limit=1 << 20
            )
        except OSError as exc:
            raise ConnectionLost(f"cannot connect to {self.host}:{self.port}: {exc}") from None
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
        if self.closed:
            raise RelayError("the upstream session is closed")
        request = self._head + b"content-length: %d\r\n\r\n" % len(body) + body
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


# -- one call ----------------------------------------------------------------------------------

_ids = itertools.count(1)
_background: set[asyncio.Task[None]] = set()


def _spawn(coro: Any) -> None:
    """Run ``coro`` on its own, held until it ends (the loop keeps only weak references)."""
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


def _events(buffer: bytearray) -> list[bytes]:
    """Complete SSE events' data (``data:`` lines joined), taken off the front of ``buffer``."""
    out: list[bytes] = []
    while True:
        text = bytes(buffer)
        cut, sep = -1, 0
        for s in (b"\r\n\r\n", b"\n\n", b"\r\r"):
            i = text.find(s)
            if i != -1 and (cut == -1 or i < cut):
                cut, sep = i, len(s)
        if cut == -1:
            return out
        del buffer[: cut + sep]
        data = [
            line[5:].removeprefix(b" ")
            for line in text[:cut].replace(b"\r\n", b"\n").split(b"\n")
            if line.startswith(b"data:")
        ]
        if data:
            out.append(b"\n".join(data))


@dataclass
class Call:
    """A relayed ``tools/call``: the caller's request, under the relay's own id upstream."""

    upstream: UpstreamHttp
    request: dict[str, Any]
    upstream_id: str = field(default_factory=lambda: f"mcpd-relay-{next(_ids)}")
    answered: bool = False

    async def messages(self, timeout: float) -> AsyncIterator[dict[str, Any]]:
        """What the upstream sends back on this request's POST, the response last, under the
        caller's id. The upstream's own requests to the caller are refused (as the SDK
        client does: mcpd offers no sampling or elicitation)."""
        body = json.dumps({**self.request, "id": self.upstream_id}, separators=(",", ":"))
        deadline = time.monotonic() + timeout
        exchange = await asyncio.wait_for(self.upstream.post(body.encode()), timeout)
        try:
            if exchange.status == 404:
                raise SessionGone("the upstream no longer knows mcpd's session")
            if exchange.status != 200:
                raise RelayError(f"the upstream answered HTTP {exchange.status}")
            kind = exchange.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind not in ("application/json", "text/event-stream"):
                raise RelayError(f"the upstream answered {kind or 'no content type'}")
            buffer = bytearray()
            body_iter = exchange.body()
            while not self.answered:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                try:
                    chunk = await asyncio.wait_for(anext(body_iter), left)
                except StopAsyncIteration:
                    break
                buffer += chunk
                if len(buffer) > MAX_MESSAGE:
                    raise RelayError(f"the upstream sent a message over {MAX_MESSAGE} bytes")
                if kind == "application/json":
                    continue
                for data in _events(buffer):
                    for message in self._accept(data):
                        yield message
            if kind == "application/json" and buffer:
                for message in self._accept(bytes(buffer)):
                    yield message
            if not self.answered:
                raise RelayError("the upstream ended its answer without a result")
            # the stream ends after the result; read it to the end to keep the connection
            with _quiet():
                async for _ in _bounded(body_iter, 0.05):
                    pass
        finally:
            exchange.release()

    def _accept(self, data: bytes) -> list[dict[str, Any]]:
        try:
            message = json.loads(data)
        except ValueError:
            raise RelayError("the upstream sent something that is not JSON") from None
        messages = message if isinstance(message, list) else [message]
        out = []
        for m in messages:
            if not isinstance(m, dict):
                continue
            if "method" in m and "id" in m:  # a request of the upstream's own
                _spawn(self._refuse(m["id"], str(m["method"])))
            elif "method" in m:
                out.append(m)  # a notification: progress, log messages...
            elif m.get("id") == self.upstream_id:
                self.answered = True
                out.append({**m, "id": self.request["id"]})
        return out

    async def _refuse(self, request_id: Any, method: str) -> None:
        error = {"code": -32601, "message": f"{method} is not supported through mcpd"}
        await self._post_quietly({"jsonrpc": "2.0", "id": request_id, "error": error})

    async def cancel(self, reason: str) -> None:
        """Tell the upstream this request is abandoned (the caller went away or cancelled)."""
        if self.answered:
            return
        params = {"requestId": self.upstream_id, "reason": reason}
        await self._post_quietly(
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params}
        )

    async def _post_quietly(self, message: dict[str, Any]) -> None:
        with _quiet():
            exchange = await asyncio.wait_for(self.upstream.post(json.dumps(message).encode()), 5.0)
            try:
                async for _ in _bounded(exchange.body(), 5.0):
                    pass
            finally:
                exchange.release()


class _quiet:
    """Swallow the upstream's failures (for best-effort messages)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        return exc is not None and isinstance(exc, (RelayError, OSError, TimeoutError))


async def _bounded(chunks: AsyncIterator[bytes], seconds: float) -> AsyncIterator[bytes]:
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        try:
            yield await asyncio.wait_for(anext(chunks), left)
        except StopAsyncIteration:
            return


# -- the caller's side -------------------------------------------------------------------------


_REQUEST_KEYS = {"jsonrpc", "id", "method", "params"}


def single_request(headers: Mapping[str, str], body: bytes) -> dict[str, Any] | None:
    """The one JSON-RPC request this POST holds, if it is plain enough for a fast lane
    (else None: the SDK path answers it, errors included). The caller's protocol version
    is for the lane to check (``Target.speaks``)."""
    if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return None
    accept = headers.get("accept", "")
    if "application/json" not in accept or "text/event-stream" not in accept:
        return None
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return None
    if set(message) - _REQUEST_KEYS or not isinstance(message.get("method"), str):
        return None
    request_id = message.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
        return None
    if not isinstance(message.get("params", {}), dict):
        return None
    return message


def is_tools_call(message: dict[str, Any]) -> bool:
    params = message.get("params")
    return (
        message["method"] == "tools/call"
        and isinstance(params, dict)
        and isinstance(params.get("name"), str)
        and isinstance(params.get("arguments", {}), dict)
    )


def owns_session(manager: StreamableHTTPSessionManager, session_id: str | None, user: Any) -> bool:
    """Whether ``session_id`` is open in ``manager`` and was opened by ``user`` (the SDK's
    own ownership rule; its tables are private, so this is checked by tests/relay)."""
    if session_id is None or session_id not in manager._server_instances:
        return False
    requestor = authorization_context(user) if isinstance(user, AuthenticatedUser) else None
    return bool(requestor == manager._session_owners.get(session_id))


def replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for an ASGI app, giving first the request ``body`` already read."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def sse_event(message: dict[str, Any]) -> bytes:
    data = json.dumps(message, separators=(",", ":")).encode()
    return b"event: message\r\ndata: " + data + b"\r\n\r\n"


def error_result(request_id: Any, text: str) -> dict[str, Any]:
    """A ``tools/call`` result with ``isError``: the upstream failed, not the protocol."""
    result = {"content": [{"type": "text", "text": text}], "isError": True}
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


@dataclass(frozen=True)
class Target:
    """Where an instance's calls may be relayed: its upstream session, at its version;
    the instance's name and call timeout, and what to do when the connection is lost."""

    upstream: UpstreamHttp
    version: str
    server: str
    timeout: float
    lost: Callable[[str], None]

    def speaks(self, headers: Mapping[str, str]) -> bool:
        """Whether the caller's protocol version is this session's (so what the upstream
        says is what the caller may hear)."""
        return headers.get(VERSION_HEADER) == self.version


class Relay:
    """The relayed calls in flight in one app, so a caller's ``notifications/cancelled``
    reaches the right upstream request."""

    def __init__(self) -> None:
        self._calls: dict[tuple[str, str], Call] = {}

    def cancelled(self, owner: str, body: bytes) -> bool:
        """If ``body`` cancels one of ``owner``'s relayed calls: pass that on, say True."""
        if b"notifications/cancelled" not in body:
            return False
        try:
            message = json.loads(body)
        except ValueError:
            return False
        if not isinstance(message, dict) or message.get("method") != "notifications/cancelled":
            return False
        params = message.get("params")
        if not isinstance(params, dict):
            return False
        call = self._calls.get((owner, json.dumps(params.get("requestId"))))
        if call is None:
            return False
        _spawn(call.cancel(str(params.get("reason") or "cancelled by the caller")))
        return True

    def response(
        self,
        owner: str,
        target: Target,
        message: dict[str, Any],
        session_id: str | None,
        on_done: Callable[[dict[str, Any] | None, str | None], None] = lambda r, e: None,
    ) -> StreamingResponse:
        """The caller's answer to the ``tools/call`` ``message``, relayed to ``target``: an
        SSE stream (:meth:`stream`) on the caller's session."""
        stream = self.stream(owner, target, Call(target.upstream, message), on_done)
        headers = {**SSE_HEADERS, **({SESSION_HEADER: session_id} if session_id else {})}
        return StreamingResponse(stream, headers=headers, media_type="text/event-stream")

    async def stream(
        self,
        owner: str,
        target: Target,
        call: Call,
        on_done: Callable[[dict[str, Any] | None, str | None], None],
    ) -> AsyncIterator[bytes]:
        """The SSE events answering ``call``. A failed upstream gives an ``isError`` result
        naming the server (as the SDK path does), a lost connection is the instance's to
        handle (``target.lost``), and ``on_done(response, error)`` hears how it ended."""
        server, timeout = target.server, target.timeout
        request_id = call.request["id"]
        tool = call.request["params"]["name"]
        key = (owner, json.dumps(request_id))
        self._calls[key] = call
        response: dict[str, Any] | None = None
        error: str | None = None
        try:
            try:
                async for message in call.messages(timeout):
                    if "method" not in message:
                        response = message
                    yield sse_event(message)
            except RelayError as exc:
                if isinstance(exc, ConnectionLost):
                    target.lost(f"connection lost: {exc}")
                error = f"server `{server}`: tools/call {tool} failed: {exc}"
            except TimeoutError:
                _spawn(call.cancel("timed out"))
                error = f"server `{server}` did not answer tools/call {tool} within {timeout:g}s"
            if error is not None:
                response = error_result(request_id, error)
                yield sse_event(response)
        except BaseException:  # the caller went away: so does its request
            _spawn(call.cancel("the caller went away"))
            error = "the caller went away"
            raise
        finally:
            self._calls.pop(key, None)
            on_done(response, error)
