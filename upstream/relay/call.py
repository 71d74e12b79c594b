"""One relayed ``tools/call``: sent upstream under the relay's own id, its answer read back
(progress notifications, then the result) and given the caller's id again."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from upstream.errors import RelayError, SessionGone
from upstream.relay.http import UpstreamHttp
from upstream.relay.sse import events

MAX_MESSAGE = 32 * 1024 * 1024  # one message from the upstream, at most (bytes)

_ids = itertools.count(1)
_background: set[asyncio.Task[None]] = set()


def spawn(coro: Any) -> None:
    """Run ``coro`` on its own, held until it ends (the loop keeps only weak references)."""
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


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
                for data in events(buffer):
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
                spawn(self._refuse(m["id"], str(m["method"])))
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
