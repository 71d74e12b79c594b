"""The lane to a stdio child: callers' ``tools/call`` multiplexed over its stdin and stdout.

A stdio server has one pair of pipes, which the instance's SDK session also uses (for
``initialize``, lists, probes and the calls the SDK path answers). :class:`StdioPipe`
shares them: a relayed call is written to the child's stdin as one line, under the relay's
own id (``mcpd-relay-N``; the SDK session's ids are integers) and, if the caller asked for
progress, with that id as its progress token. The stdout reader
(:func:`upstream.stdio.stdio_transport`) offers each line to :meth:`StdioPipe.route` before
the SDK session sees it; what is the lane's - the answers to its requests, their progress,
the child's requests to a caller and its withdrawals of them - goes to its call
(:class:`PipeCall`), under the caller's id and token again. Anything else is the SDK
session's, as before.

The child's own requests (``sampling/createMessage``, ``elicitation/create``,
``roots/list``) say nothing on stdio about which request they belong to: the MCP SDKs tie
them to their request only by the HTTP stream they ride (``related_request_id``), and on
stdio there is one stream (neither the Python SDK v2 nor the TypeScript one, in
server-everything, puts an id or a progress token in them). So one is given to a caller
only when that is certain: exactly one request is in flight on the child, and it is that
caller's relayed call. Otherwise it is refused (-32601, saying why): one caller's upstream
requests never reach another caller.

To keep that from refusing such requests whenever two callers use the child at once, the
pipe learns which tools ask (:attr:`StdioPipe.asking`: a tool whose call was alone when the
child asked, and every tool in flight when an ask could not be told apart) and runs a call
of such a tool **alone**: it waits until no other relayed call is in flight, and no call
starts until it ends (first come, first served, so neither kind starves). Calls of other
tools stay concurrent. The SDK session's own requests (probes, lists, the SDK path) are not
held back: an ask while one of them is in flight stays ambiguous and is refused.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from upstream.errors import RelayError
from upstream.relay.call import CAPABILITY, PREFIX, Relayed, _quiet, spawn, with_caller_id

_PREFIX = PREFIX.encode()
# the child's messages the lane may have to take when no id of its own is in them
_ASKS = (*(m.encode() for m in CAPABILITY), b"notifications/cancelled")
_NO_TOKEN = object()


class StdioPipe:
    """The relayed calls in flight on one stdio child, and its stdin to write them to."""

    def __init__(self, asking: set[str] | None = None) -> None:
        self._write: Callable[[bytes], Awaitable[None]] | None = None
        self._calls: dict[str, PipeCall] = {}
        self.others = 0  # the SDK session's requests in flight on the child (Instance.request)
        self.closed = False
        # the tools whose calls may ask the caller (run alone); the instance's, across restarts
        self.asking: set[str] = asking if asking is not None else set()
        self._alone: PipeCall | None = None  # the call running alone, if one is
        self._waiting: list[tuple[PipeCall, asyncio.Future[None]]] = []  # in arrival order

    def attach(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        """``write``: sends one line to the child's stdin (RelayError when it cannot)."""
        self._write = write

    def close(self, why: str = "the server's process ended") -> None:
        """No more calls; those in flight fail with ``why``, those waiting too."""
        self.closed = True
        for call in list(self._calls.values()):
            call.lost(why)
        self._wake()

    def call(
        self, request: dict[str, Any], capabilities: Mapping[str, Any], stateless: bool
    ) -> PipeCall:
        return PipeCall(self, request, capabilities, stateless)

    def in_flight(self) -> int:
        return len(self._calls)

    def _may_start(self, call: PipeCall) -> bool:
        if self._alone is not None:
            return False
        return call.tool not in self.asking or not self._calls

    async def _admit(self, call: PipeCall) -> None:
        """Wait for ``call``'s turn: at once, unless a call runs alone, calls wait before it,
        or it is of a tool that asks and others are in flight (:attr:`asking`)."""
        if self._waiting or not self._may_start(call):
            turn = asyncio.get_running_loop().create_future()
            self._waiting.append((call, turn))
            try:
                await turn
            except BaseException:
                if (call, turn) in self._waiting:
                    self._waiting.remove((call, turn))
                self._forget(call)  # (admitted as it gave up: its place goes to the next)
                self._wake()
                raise
        else:
            self._open(call)

    def _wake(self) -> None:
        """Admit the waiting calls from the first, while each may start (or fail them all
        once the child is gone)."""
        while self._waiting:
            call, turn = self._waiting[0]
            if not turn.done() and not self.closed and not self._may_start(call):
                return
            self._waiting.pop(0)
            if turn.done():  # given up meanwhile
                continue
            try:
                self._open(call)
            except RelayError as exc:
                turn.set_exception(exc)
                continue
            turn.set_result(None)

    def _open(self, call: PipeCall) -> None:
        if self.closed or self._write is None:
            raise RelayError("the server's process is not running")
        self._calls[call.upstream_id] = call
        if call.tool in self.asking:
            self._alone = call

    def _forget(self, call: PipeCall) -> None:
        if self._calls.pop(call.upstream_id, None) is None:
            return
        if self._alone is call:
            self._alone = None
        self._wake()

    async def send(self, message: dict[str, Any]) -> None:
        if self.closed or self._write is None:
            raise RelayError("the server's process is not running")
        await self._write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def route(self, line: bytes) -> bool:
        """Whether ``line``, one message from the child's stdout, is the lane's (then it is
        given to its call, or dropped: the answer of a call given up). Cheap for the lines
        that are not: a substring test."""
        if _PREFIX in line:
            m = _loads(line)
            if m is None:
                return False
            method = m.get("method")
            if method is None:
                key = m.get("id")
            elif method == "notifications/progress" and isinstance(m.get("params"), dict):
                key = m["params"].get("progressToken")
            else:
                key = None
            if isinstance(key, str) and key.startswith(PREFIX):
                call = self._calls.get(key)
                if call is not None:
                    call.deliver(m, line)
                return True
            if method is None:
                return False
        if not self._calls or not any(word in line for word in _ASKS):
            return False
        m = _loads(line)
        method = m.get("method") if m is not None else None
        if m is None or not isinstance(method, str):
            return False
        if method in CAPABILITY and "id" in m:
            calls = list(self._calls.values())
            # learnt either way: from now on these tools' calls run alone
            self.asking.update(call.tool for call in calls if call.tool)
            if len(calls) == 1 and self.others == 0:
                if self._alone is None:  # (it may ask again: no other call starts meanwhile)
                    self._alone = calls[0]
                calls[0].ask(m)
            else:
                busy = len(calls) + self.others
                text = (
                    f"{method}: the proxy cannot tell which of {busy} requests in flight on"
                    " this stdio server it is for"
                )
                spawn(calls[0]._refuse(m["id"], method, text))
            return True
        if method == "notifications/cancelled":
            for call in self._calls.values():
                withdrawn = call.withdrawn(m)
                if withdrawn is not None:
                    call.deliver(withdrawn)
                    return True
        return False


def _loads(line: bytes) -> dict[str, Any] | None:
    try:
        m = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return m if isinstance(m, dict) else None


@dataclass
class PipeCall(Relayed[StdioPipe]):
    """A relayed ``tools/call`` to a stdio child (:class:`StdioPipe`)."""

    token: Any = _NO_TOKEN  # the caller's progress token, if it asked for progress
    tool: str = ""  # the tool called (the pipe runs the calls of tools that ask alone)
    _queue: asyncio.Queue[dict[str, Any] | RelayError] = field(default_factory=asyncio.Queue)

    def deliver(self, m: dict[str, Any], line: bytes | None = None) -> None:
        """One of the child's messages for this call (``line``: as the child wrote it),
        given to the caller as theirs."""
        if "method" not in m:
            self.answered = True
            m = {**m, "id": self.request["id"]}
            if line is not None:
                self.wire = with_caller_id(line.strip(), self.upstream_id, self.request["id"])
        elif m["method"] == "notifications/progress" and self.token is not _NO_TOKEN:
            m = {**m, "params": {**m["params"], "progressToken": self.token}}
        self._queue.put_nowait(m)

    def ask(self, m: dict[str, Any]) -> None:
        """The child's request ``m``, for this call's caller (or refused: :meth:`_ask`)."""
        asked = self._ask(m)
        if asked is not None:
            self._queue.put_nowait(asked)

    def lost(self, why: str) -> None:
        self._queue.put_nowait(RelayError(why))

    async def messages(self, timeout: float) -> AsyncIterator[dict[str, Any]]:
        params = dict(self.request.get("params") or {})
        meta = params.get("_meta")
        if isinstance(meta, dict) and "progressToken" in meta:
            self.token = meta["progressToken"]
            params["_meta"] = {**meta, "progressToken": self.upstream_id}
        name = params.get("name")
        self.tool = name if isinstance(name, str) else ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self.upstream._waiting or not self.upstream._may_start(self):
            async with asyncio.timeout_at(deadline):
                await self.upstream._admit(self)
        else:
            self.upstream._open(self)  # (the common case, without a wait)
        try:
            async with asyncio.timeout_at(deadline):
                await self.upstream.send({**self.request, "id": self.upstream_id, "params": params})
            while True:
                async with asyncio.timeout_at(deadline):
                    item = await self._queue.get()
                if isinstance(item, RelayError):
                    raise item
                yield item
                if "method" not in item:
                    return
        finally:
            self.upstream._forget(self)

    async def cancel(self, reason: str) -> None:
        """Tell the child, and end the caller's stream: a cancelled request may never be
        answered (and until it ends, the child's own requests could not be told apart)."""
        if self.answered:
            return
        await super().cancel(reason)
        self.lost(f"cancelled: {reason}")

    async def _post_quietly(self, message: dict[str, Any]) -> None:
        with _quiet():
            await asyncio.wait_for(self.upstream.send(message), 5.0)
