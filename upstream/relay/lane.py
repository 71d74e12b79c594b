"""The lane: where an instance's calls may be relayed (:class:`Target`), and the caller's
side of a relayed call (:class:`Relay`: the SSE answer, cancellations, the session check)."""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from upstream import sdk_compat
from upstream.errors import ConnectionLost, RelayError
from upstream.relay.call import Call, Relayed, spawn
from upstream.relay.http import SESSION_HEADER, VERSION_HEADER, UpstreamHttp
from upstream.relay.jsonrpc import error_result
from upstream.relay.pipe import StdioPipe
from upstream.relay.sse import SSE_HEADERS, sse_data, sse_event

MAX_SESSIONS = 100_000  # sessions whose capabilities are kept (the SDK's cap is 10,000)

#: ``on_done(response, error)``: told how a relayed call ended, *before* its result goes out
#: (the audit record is written first); it may answer another response to send instead
#: (the result withheld when its record could not be written). A caller that went away
#: gets no result: then it is told afterwards.
OnDone = Callable[[dict[str, Any] | None, str | None], Awaitable[dict[str, Any] | None]]


async def _nothing(response: dict[str, Any] | None, error: str | None) -> None:
    return None


def owns_session(manager: StreamableHTTPSessionManager, session_id: str | None, user: Any) -> bool:
    """Whether ``session_id`` is open in ``manager`` and was opened by ``user`` (the SDK's
    own ownership rule; its tables are private: :mod:`upstream.sdk_compat` reads them)."""
    if session_id is None or not sdk_compat.session_is_open(manager, session_id):
        return False
    requestor = authorization_context(user) if isinstance(user, AuthenticatedUser) else None
    return bool(requestor == sdk_compat.session_owner(manager, session_id))


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


@dataclass(frozen=True)
class Target:
    """Where an instance's calls may be relayed: its upstream session (over HTTP, or a
    stdio child's pipes), at its version; the instance's name and call timeout, and what to
    do when the connection is lost."""

    upstream: UpstreamHttp | StdioPipe
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

    def __init__(self, *, stateless: bool = False) -> None:
        # stateless (no MCP sessions): a caller's answer may reach another replica, so the
        # upstream's requests to callers (sampling, elicitation, roots) are refused
        self.stateless = stateless
        self._calls: dict[tuple[str, str], Relayed[Any]] = {}
        self._by_upstream_id: dict[str, tuple[str, Relayed[Any]]] = {}
        # each session's client capabilities, from its initialize (which the SDK path answers)
        self._capabilities: OrderedDict[str, Mapping[str, Any]] = OrderedDict()

    def watch_initialize(self, body: bytes, send: Send) -> Send:
        """``send`` for the SDK's answer to this POST: if ``body`` is an ``initialize``, the
        session id the answer gives is noted with the caller's capabilities (the relay asks
        a caller only what it declared it can answer)."""
        if b"initialize" not in body:
            return send
        try:
            message = json.loads(body)
        except ValueError:
            return send
        if not isinstance(message, dict) or message.get("method") != "initialize":
            return send
        params = message.get("params")
        caps = params.get("capabilities") if isinstance(params, dict) else None
        capabilities = caps if isinstance(caps, dict) else {}

        async def noting(event: Message) -> None:
            if event["type"] == "http.response.start":
                for name, value in event.get("headers", ()):
                    if name.lower() == SESSION_HEADER.encode():
                        self._capabilities[value.decode("latin-1")] = capabilities
                        while len(self._capabilities) > MAX_SESSIONS:
                            self._capabilities.popitem(last=False)
            await send(event)

        return noting

    def forget(self, session_id: str) -> None:
        self._capabilities.pop(session_id, None)

    def answered(self, owner: str, body: bytes) -> bool:
        """If ``body`` answers a request an upstream sent to ``owner`` on a relayed call: pass
        that on, say True. (Another caller's answer is not taken: it is not theirs.)"""
        if b"-ask-" not in body:
            return False
        try:
            message = json.loads(body)
        except ValueError:
            return False
        if not isinstance(message, dict) or "method" in message:
            return False
        caller_id = message.get("id")
        if not isinstance(caller_id, str) or not ("result" in message or "error" in message):
            return False
        found = self._by_upstream_id.get(caller_id.rpartition("-ask-")[0])
        if found is None or found[0] != owner or caller_id not in found[1].pending:
            return False
        spawn(found[1].answer(caller_id, message))
        return True

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
        spawn(call.cancel(str(params.get("reason") or "cancelled by the caller")))
        return True

    def response(
        self,
        owner: str,
        target: Target,
        message: dict[str, Any],
        session_id: str | None,
        on_done: OnDone = _nothing,
    ) -> Response:
        """The caller's answer to the ``tools/call`` ``message``, relayed to ``target``: an
        SSE stream (:meth:`stream`) on the caller's session."""
        capabilities = self._capabilities.get(owner, {})
        call: Relayed[Any]
        if isinstance(target.upstream, StdioPipe):
            call = target.upstream.call(message, capabilities, self.stateless)
        else:
            call = Call(target.upstream, message, capabilities, self.stateless)
        stream = self.stream(owner, target, call, on_done)
        headers = {**SSE_HEADERS, **({SESSION_HEADER: session_id} if session_id else {})}
        return RelayedAnswer(stream, headers)

    async def stream(
        self,
        owner: str,
        target: Target,
        call: Relayed[Any],
        on_done: OnDone,
    ) -> AsyncIterator[tuple[bytes, bool]]:
        """The SSE events answering ``call``, each with whether it is the last (the result:
        what follows is the upstream's answer read to its end, so the connection is kept).
        A failed upstream gives an ``isError`` result naming the server (as the SDK path
        does), a lost connection is the instance's to handle (``target.lost``), and
        ``on_done`` (:data:`OnDone`) hears how it ended."""
        server, timeout = target.server, target.timeout
        request_id = call.request["id"]
        tool = call.request["params"]["name"]
        key = (owner, json.dumps(request_id))
        self._calls[key] = call
        self._by_upstream_id[call.upstream_id] = (owner, call)
        response: dict[str, Any] | None = None
        error: str | None = None
        told = False
        try:
            try:
                async for message in call.messages(timeout):
                    if "method" not in message:
                        response, told = message, True
                        instead = await on_done(response, None)
                        if instead is None and call.wire is not None:
                            yield sse_data(call.wire), True  # the upstream's own bytes
                            continue
                        message = instead or message
                    yield sse_event(message), told
            except RelayError as exc:
                if isinstance(exc, ConnectionLost):
                    target.lost(f"connection lost: {exc}")
                error = f"server `{server}`: tools/call {tool} failed: {exc}"
            except TimeoutError:
                spawn(call.cancel("timed out"))
                error = f"server `{server}` did not answer tools/call {tool} within {timeout:g}s"
            if error is not None:
                response, told = error_result(request_id, error), True
                yield sse_event(await on_done(response, error) or response), True
        except BaseException:  # the caller went away: so does its request
            spawn(call.cancel("the caller went away"))
            error = "the caller went away"
            raise
        finally:
            self._calls.pop(key, None)
            self._by_upstream_id.pop(call.upstream_id, None)
            if not told:
                spawn(on_done(response, error))


HEAD_WITHIN = 0.05  # seconds: a slower answer's head goes out then, before its first event


class RelayedAnswer(Response):
    """The SSE answer of a relayed call, written as its events come: like Starlette's
    StreamingResponse, without its task group (a third of a relayed call's CPU). The
    caller's going away (``http.disconnect``, watched by one plain task once the call
    takes longer than :data:`HEAD_WITHIN`) cancels the writing, and with it the call
    (:meth:`Relay.stream`); a quicker call is simply answered.

    The head waits for the first event, up to :data:`HEAD_WITHIN`: most calls are answered
    sooner, by their result alone, and then head and event leave as one plain (not
    chunked) body in one write; a slower call's head goes out at that moment, its events
    chunked as they come. The body ends with the result, before the upstream's answer is
    read to its end."""

    def __init__(
        self, events: AsyncIterator[tuple[bytes, bool]], headers: Mapping[str, str]
    ) -> None:
        self.events = events
        self.status_code = 200
        self.background = None
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.raw_headers = [*raw, (b"content-type", b"text/event-stream")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        state = {"finished": False, "gone": False}

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            if not state["finished"]:
                state["gone"] = True
                task.cancel()

        loop = asyncio.get_running_loop()
        start = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
        early: asyncio.Task[None] | None = None
        watcher: asyncio.Task[None] | None = None

        async def head() -> None:
            await send(start)

        def head_now() -> None:  # a slow call: its head goes out, its caller is watched
            nonlocal early, watcher
            early = loop.create_task(head())
            watcher = loop.create_task(watch())

        timer: asyncio.TimerHandle | None = loop.call_later(HEAD_WITHIN, head_now)
        try:
            async for chunk, last in self.events:
                if state["finished"]:
                    continue  # (the upstream's answer read to its end)
                if timer is not None:
                    timer.cancel()
                    timer = None
                    if early is not None:
                        await early
                    elif last:  # the whole answer: one plain body
                        length = (b"content-length", b"%d" % len(chunk))
                        await send({**start, "headers": [*self.raw_headers, length]})
                    else:
                        await send(start)
                state["finished"] = last
                await send({"type": "http.response.body", "body": chunk, "more_body": not last})
            if not state["finished"]:
                if timer is not None:
                    timer.cancel()
                    timer = None
                    await (early or head())
                state["finished"] = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not state["gone"] or task.uncancel() > 0:
                raise  # (cancelled by someone else too: shutting down)
            # the caller went away: nothing more to write
        except OSError:
            state["finished"] = True  # the caller went away mid-write
        finally:
            state["finished"] = True
            if timer is not None:
                timer.cancel()
            if early is not None and early.done() and not early.cancelled():
                early.exception()  # (seen: a failed early head is no "never retrieved" noise)
            if watcher is not None:
                watcher.cancel()
            await _close(self.events)


async def _close(events: AsyncIterator[Any]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
