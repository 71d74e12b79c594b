"""One relayed ``tools/call``: sent upstream under the relay's own id, its answer read back
(progress notifications, then the result) and given the caller's id again.

:class:`Relayed` is what every lane's call shares (the upstream's own requests asked of the
caller, their answers, cancellation); :class:`Call` is one over Streamable HTTP, and
:class:`upstream.relay.pipe.PipeCall` one over a stdio child's pipes."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from upstream.errors import RelayError, SessionGone
from upstream.relay.http import UpstreamHttp
from upstream.relay.sse import parse

MAX_MESSAGE = 32 * 1024 * 1024  # one message from the upstream, at most (bytes)
MAX_RESUMES = 100  # streams closed before the result, resumed (SEP-1699), at most
MAX_RETRY = 5.0  # seconds: the longest ``retry`` waited before resuming

# the server-to-client requests a caller may be asked, by the capability it must declare
CAPABILITY = {
    "sampling/createMessage": "sampling",
    "elicitation/create": "elicitation",
    "roots/list": "roots",
}
_NONE = object()
_ids = itertools.count(1)
PREFIX = "mcpd-relay-"  # of the relay's own request ids (and progress tokens) upstream
U = TypeVar("U")
V = TypeVar("V")
_background: set[asyncio.Task[None]] = set()


def spawn(coro: Any) -> None:
    """Run ``coro`` on its own, held until it ends (the loop keeps only weak references)."""
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


@dataclass
class Relayed(Generic[U]):
    """A relayed ``tools/call``: the caller's request, under the relay's own id upstream."""

    upstream: U
    request: dict[str, Any]
    capabilities: Mapping[str, Any] = field(default_factory=dict)  # the caller's (initialize)
    stateless: bool = False  # no session to ask the caller on: the upstream's requests refused
    upstream_id: str = field(default_factory=lambda: f"{PREFIX}{next(_ids)}")
    answered: bool = False
    wire: bytes | None = None  # the response as the upstream sent it, with the caller's id
    asked: int = 0
    pending: dict[str, Any] = field(default_factory=dict)  # caller's id -> upstream's request id

    def messages(self, timeout: float) -> AsyncIterator[dict[str, Any]]:
        """What the upstream sends back on this request, the response last, under the
        caller's id; TimeoutError after ``timeout`` seconds, RelayError on a failure."""
        raise NotImplementedError

    async def _post_quietly(self, message: dict[str, Any]) -> None:
        """Send ``message`` upstream, best effort (failures swallowed)."""
        raise NotImplementedError

    def _ask(self, m: dict[str, Any]) -> dict[str, Any] | None:
        """The upstream's request ``m`` as the caller gets it (on this call's stream, under an
        id of the relay's own, answered through :meth:`answer`), or None: refused, the
        caller did not declare the capability it needs."""
        method = str(m["method"])
        capability = CAPABILITY.get(method)
        if capability is None or capability not in self.capabilities:
            spawn(self._refuse(m["id"], method))
            return None
        self.asked += 1
        caller_id = f"{self.upstream_id}-ask-{self.asked}"
        self.pending[caller_id] = m["id"]
        return {**m, "id": caller_id}

    def withdrawn(self, m: dict[str, Any]) -> dict[str, Any] | None:
        """The upstream's ``notifications/cancelled`` ``m`` of a request it asked the caller
        (:meth:`_ask`), under the caller's id for it; None if it is of no such request."""
        params = m.get("params")
        if not isinstance(params, dict):
            return None
        for caller_id, upstream_id in self.pending.items():
            if upstream_id == params.get("requestId") and type(upstream_id) is type(
                params.get("requestId")
            ):
                del self.pending[caller_id]
                return {**m, "params": {**params, "requestId": caller_id}}
        return None

    async def answer(self, caller_id: str, message: dict[str, Any]) -> bool:
        """Pass the caller's answer to one of the upstream's requests back, under its id."""
        upstream_id = self.pending.pop(caller_id, _NONE)
        if upstream_id is _NONE:
            return False
        reply = {k: v for k, v in message.items() if k in ("jsonrpc", "result", "error")}
        await self._post_quietly({**reply, "id": upstream_id})
        return True

    async def _refuse(self, request_id: Any, method: str, text: str | None = None) -> None:
        # -32601, as the SDK's own client answers a request it has no handler for
        capability = CAPABILITY.get(method)
        if text is not None:
            pass
        elif capability and self.stateless:
            text = f"{method} needs an MCP session: the proxy is stateless"
        elif capability:
            text = f"the client does not support {capability}"
        else:
            text = f"{method} is not supported through the proxy"
        error = {"code": -32601, "message": text}
        await self._post_quietly({"jsonrpc": "2.0", "id": request_id, "error": error})

    async def cancel(self, reason: str) -> None:
        """Tell the upstream this request is abandoned (the caller went away or cancelled)."""
        if self.answered:
            return
        params = {"requestId": self.upstream_id, "reason": reason}
        await self._post_quietly(
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params}
        )


@dataclass
class Call(Relayed[UpstreamHttp]):
    """A relayed ``tools/call`` to a Streamable HTTP upstream, on mcpd's session there."""

    async def messages(self, timeout: float) -> AsyncIterator[dict[str, Any]]:
        """What the upstream sends back on this request's POST, the response last, under the
        caller's id. Priming events are skipped, their ids remembered: a stream the upstream
        closes before the result (SEP-1699 polling) is resumed with ``Last-Event-ID``
        after the ``retry`` it asked for. The upstream's own requests (sampling,
        elicitation, roots) go to ``self.ask`` (the caller's session), or are refused."""
        body = json.dumps({**self.request, "id": self.upstream_id}, separators=(",", ":"))
        deadline = time.monotonic() + timeout
        exchange = await _within(self.upstream.post(body.encode()), timeout)
        if exchange.status == 401:  # a credential renewed meanwhile: once more, with the new one
            exchange.release()
            if not await self.upstream.renewed():
                raise RelayError("the upstream answered HTTP 401")
            left = max(0.001, deadline - time.monotonic())
            exchange = await _within(self.upstream.post(body.encode()), left)
        last_id: str | None = None
        retry = 1.0
        for _ in range(MAX_RESUMES):
            try:
                if exchange.status == 404:
                    raise SessionGone("the upstream no longer knows mcpd's session")
                if exchange.status != 200:
                    raise RelayError(f"the upstream answered HTTP {exchange.status}")
                kind = exchange.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind not in ("application/json", "text/event-stream"):
                    raise RelayError(f"the upstream answered {kind or 'no content type'}")
                buffer = bytearray()
                while not self.answered:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError
                    # (a part already received is taken without a timer: most answers are)
                    chunk = await (
                        exchange.read() if exchange.ready else _within(exchange.read(), left)
                    )
                    if chunk is None:
                        break
                    buffer += chunk
                    if len(buffer) > MAX_MESSAGE:
                        raise RelayError(f"the upstream sent a message over {MAX_MESSAGE} bytes")
                    if kind == "application/json":
                        continue
                    for event in parse(buffer):
                        last_id = event.id if event.id is not None else last_id
                        retry = event.retry / 1000 if event.retry is not None else retry
                        if event.data.strip():
                            for message in self._accept(event.data):
                                yield message
                if kind == "application/json" and buffer:
                    for message in self._accept(bytes(buffer)):
                        yield message
                if self.answered:
                    # the stream ends after the result; read it to the end to keep the connection
                    if not exchange.complete:
                        with _quiet():
                            async for _ in _bounded(exchange.body(), 0.05):
                                pass
                    return
                if kind != "text/event-stream" or last_id is None:
                    raise RelayError("the upstream ended its answer without a result")
            finally:
                exchange.release()
            # closed before the result: resume after the last event seen
            await asyncio.sleep(min(retry, MAX_RETRY, max(0.0, deadline - time.monotonic())))
            exchange = await _within(
                self.upstream.resume(last_id), max(0.001, deadline - time.monotonic())
            )
        raise RelayError(f"the upstream closed its answer {MAX_RESUMES} times without a result")

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
                asked = self._ask(m)
                if asked is not None:
                    out.append(asked)
            elif m.get("method") == "notifications/cancelled":
                out.append(self.withdrawn(m) or m)  # (of a request it asked the caller?)
            elif "method" in m:
                out.append(m)  # a notification: progress, log messages...
            elif m.get("id") == self.upstream_id:
                self.answered = True
                out.append({**m, "id": self.request["id"]})
                if m is message:  # (not in a batch)
                    self.wire = with_caller_id(data, self.upstream_id, self.request["id"])
        return out

    async def _post_quietly(self, message: dict[str, Any]) -> None:
        with _quiet():
            exchange = await _within(self.upstream.post(json.dumps(message).encode()), 5.0)
            try:
                async for _ in _bounded(exchange.body(), 5.0):
                    pass
            finally:
                exchange.release()


_OPENING = re.compile(rb'\A\s*\{\s*"jsonrpc"\s*:\s*"2\.0"\s*,\s*"id"\s*:\s*')


def with_caller_id(data: bytes, upstream_id: str, caller_id: Any) -> bytes | None:
    """The upstream's response ``data`` as the caller gets it, the relay's id replaced by
    the caller's, without serializing it again (a large result takes milliseconds to dump;
    and the caller sees the upstream's own bytes). None unless that is certain: the id
    opens the message (``{"jsonrpc":"2.0","id":``, as the SDKs write it: so it is the
    message's own id, not one inside its result) and the message is one line."""
    opening = _OPENING.match(data)
    if opening is None or b"\n" in data or b"\r" in data:
        return None
    quoted = b'"' + upstream_id.encode() + b'"'  # (the relay's ids need no escapes)
    at = opening.end()
    if not data.startswith(quoted, at):
        return None
    caller = json.dumps(caller_id, separators=(",", ":")).encode()
    return data[:at] + caller + data[at + len(quoted) :]


async def _within(step: Awaitable[V], seconds: float) -> V:
    """``step``'s result, or TimeoutError after ``seconds`` (``asyncio.wait_for`` without its
    task: on Python 3.11 that is a task per call, per chunk read)."""
    async with asyncio.timeout(seconds):
        return await step


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
            yield await _within(anext(chunks), left)
        except StopAsyncIteration:
            return
