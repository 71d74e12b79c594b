"""The fast lane for ``tools/call``: JSON-RPC relayed as bytes, not through two SDK stacks.

Through the SDK, a call crossing mcpd (or mcplocal) is parsed and validated by an SDK
server, re-sent by an SDK client over httpx, and its answer parsed, validated and
serialized twice more: about 4 ms of CPU per call here, more than the client and the
upstream server spend together. When nothing about a call needs the SDK, it is relayed:

* the caller's POST holds one ``tools/call`` request (:mod:`.jsonrpc`), on a session the
  SDK opened for this caller (``owns_session``), at the protocol version the upstream
  session speaks (:mod:`.lane`);
* the upstream is reached (``Instance.relay``, set while RUNNING) over HTTP, unless the
  proxy environment sends its URL through a proxy: the request goes to it on the
  upstream session mcpd already holds, under an id of the relay's own (callers' ids would
  collide there; :mod:`.call`), over kept-alive HTTP/1.1 connections (:mod:`.http`:
  asyncio streams and httptools' parser, ~20x less CPU than httpx);
* or it is a stdio child: the request is written to its stdin as one line under the
  relay's own id, beside the SDK session's own traffic on the same pipes, and its answer
  picked out of its stdout (:mod:`.pipe`);
* what the upstream sends back - progress notifications, its own requests to the caller,
  then the result - is passed on as it arrives (:mod:`.sse`), the result under the
  caller's id again.

Anything else (another method, a batch, an odd header, a tool the caller may not run)
takes the SDK path, which answers it, errors included, as before. A caller that goes
away mid-call has its request cancelled upstream.
"""

from upstream.errors import ConnectionLost, RelayError, SessionGone
from upstream.relay.call import Call
from upstream.relay.http import (
    AUDITED_HEADER,
    SESSION_HEADER,
    VERSION_HEADER,
    Exchange,
    UpstreamHttp,
    proxy_for,
)
from upstream.relay.jsonrpc import error_result, is_tools_call, single_request
from upstream.relay.lane import OnDone, Relay, Target, owns_session, replay
from upstream.relay.pipe import PipeCall, StdioPipe
from upstream.relay.sse import SSE_HEADERS, events, sse_event

__all__ = [
    "AUDITED_HEADER",
    "SESSION_HEADER",
    "SSE_HEADERS",
    "VERSION_HEADER",
    "Call",
    "ConnectionLost",
    "Exchange",
    "OnDone",
    "PipeCall",
    "Relay",
    "RelayError",
    "SessionGone",
    "StdioPipe",
    "Target",
    "UpstreamHttp",
    "error_result",
    "events",
    "is_tools_call",
    "owns_session",
    "proxy_for",
    "replay",
    "single_request",
    "sse_event",
]
