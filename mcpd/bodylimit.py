"""Request bodies at mcpd's boundary: a size cap enforced before reading, a read timeout,
and a nesting cap for JSON - checked by :mod:`mcpd.edge`, the one raw ASGI layer in
front of every route, before anything else reads the body.

* **Size.** Each path has a cap (:class:`BodyLimits`: 1 MiB by default, more for
  ``POST /api/v1/restore``, the MCP SDK's own limit for the per-server MCP endpoint). A
  ``Content-Length`` above it is answered 413 before a byte of the body is read; a body
  without one (chunked) is counted while it streams in and refused as soon as it passes the
  cap. Memory per request is therefore bounded by the cap, whatever the client sends.
* **Time.** The whole body must arrive within ``read_timeout`` seconds (else 408): a client
  trickling bytes cannot hold a worker and its buffer for ever.
* **Nesting.** A JSON body nested deeper than ``max_depth`` is answered 400 here: Python's
  parser (and so FastAPI's and the relay's) would otherwise raise RecursionError, a 500.
  Counting brackets costs nothing for ordinary bodies; only one with more brackets than
  ``max_depth`` is scanned (strings skipped).

A request with no body (no ``Content-Length``, no ``Transfer-Encoding``: GETs, SSE streams)
passes straight through, its ``receive`` untouched.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from functools import cached_property

from starlette.types import Receive, Scope, Send

from mcpd.errors import problem

MIB = 1024 * 1024
# a JSON string: runs of plain characters between escapes ("unrolled", so the engine does
# not try an alternation at every character: 3x faster on a batch of audit records)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_too_deep(body: bytes, max_depth: int) -> bool:
    """Whether ``body`` (JSON, or something meant as JSON) nests deeper than ``max_depth``."""
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False
    depth = 0
    for b in _STRING.sub(b"", body).translate(None, _NOT_BRACKETS):
        if b in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


@dataclass(frozen=True)
class BodyLimits:
    default: int = MIB
    # (path prefix or exact path, cap); the first that matches wins
    paths: tuple[tuple[str, int], ...] = field(default_factory=tuple)
    read_timeout: float = 30.0
    max_depth: int = 256

    def cap_for(self, path: str) -> int:
        got = path.strip("/").split("/")
        for want, cap in self._segments:
            if _matches(want, got):
                return cap
        return self.default

    @cached_property
    def _segments(self) -> tuple[tuple[list[str], int], ...]:
        return tuple((pattern.strip("/").split("/"), cap) for pattern, cap in self.paths)


def _matches(want: list[str], got: list[str]) -> bool:
    """``/a/*/b`` matches one path segment for each ``*``; otherwise an exact path."""
    return len(want) == len(got) and all(w in ("*", g) for w, g in zip(want, got, strict=True))


class _NoBody:
    """(the type of :data:`NO_BODY`)"""


#: what :func:`read_bounded` gives for a request without a body (it passes untouched)
NO_BODY = _NoBody()
#: what :func:`read_bounded` gives when it answered the request itself (413, 408, 400) or
#: the client went away
REFUSED = None


async def read_bounded(
    limits: BodyLimits, scope: Scope, receive: Receive, send: Send
) -> bytes | _NoBody | None:
    """The request's body, read within ``limits`` (its cap, its time, its nesting): the
    body; :data:`NO_BODY` (no ``Content-Length``, no ``Transfer-Encoding``: ``receive``
    untouched); or :data:`REFUSED` once the refusal is sent (or the client left)."""
    headers = dict(scope.get("headers") or ())
    length = headers.get(b"content-length")
    if length is None and b"transfer-encoding" not in headers:
        return NO_BODY
    cap = limits.cap_for(scope["path"])
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            await _refuse(scope, receive, send, 400, "Bad Request", "invalid Content-Length")
            return REFUSED
        if declared > cap:
            await _too_large(scope, receive, send, cap)
            return REFUSED
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.read_timeout):  # (anyio's scope costs 3x more)
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return REFUSED
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > cap:
                    await _too_large(scope, receive, send, cap)
                    return REFUSED
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        detail = f"the request body did not arrive within {limits.read_timeout:g} s"
        await _refuse(scope, receive, send, 408, "Request Timeout", detail)
        return REFUSED
    body = b"".join(chunks)
    del chunks
    content_type = headers.get(b"content-type", b"").lower()
    if (b"json" in content_type or not content_type) and json_too_deep(body, limits.max_depth):
        detail = f"the JSON body is nested deeper than {limits.max_depth} levels"
        await _refuse(scope, receive, send, 400, "Bad Request", detail)
        return REFUSED
    return body


async def _too_large(scope: Scope, receive: Receive, send: Send, cap: int) -> None:
    shown = f"{cap // MIB} MiB" if cap % MIB == 0 else f"{cap} bytes"
    await _refuse(
        scope, receive, send, 413, "Content Too Large", f"the request body is over {shown}"
    )


async def _refuse(
    scope: Scope, receive: Receive, send: Send, status: int, title: str, detail: str
) -> None:
    response = problem(status, title, detail)
    response.headers["connection"] = "close"  # the rest of the body is never read
    await response(scope, receive, send)
