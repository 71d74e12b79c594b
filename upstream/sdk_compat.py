"""Every use of a private attribute of the MCP SDK (and of sse-starlette's ``AppStatus``).

The SDK gives no public way to do four things mcpd and mcplocal need, so they read its
internals, here and nowhere else:

* whether a Streamable HTTP session is open in a ``StreamableHTTPSessionManager``, and
  who opened it (``_server_instances``, ``_session_owners``): the fast lane relays a
  call on a session only when the SDK would serve it to the same caller;
* the client connection behind a request's ``ctx.session`` (``_connection``), which
  outlives the request: to tell that client later that a list changed;
* httpx2's connection pool behind an ``AsyncHTTPTransport`` (``_pool``) and its network
  backend (``_network_backend``): :mod:`upstream.guard` checks the address every upstream
  connection reaches, which httpx2 offers no hook for;
* sse-starlette's process-wide ``AppStatus`` (the SDK answers in SSE through it), which
  ends every SSE stream at once on SIGTERM unless told otherwise: serving.py gives calls
  in flight a grace period first.

:data:`RELIED_ON` lists each of them; tests/upstream/test_sdk_compat.py checks every one
against the installed SDK and fails naming the attribute when an upgrade removed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager


@dataclass(frozen=True)
class Reliance:
    """One private attribute this module reads: ``owner.attribute``, from ``distribution``.

    ``on_instance``: the attribute is set on each object (in ``__init__``), not the class."""

    distribution: str
    owner: str  # module.Class
    attribute: str
    on_instance: bool
    why: str


RELIED_ON: tuple[Reliance, ...] = (
    Reliance(
        "mcp",
        "mcp.server.streamable_http_manager.StreamableHTTPSessionManager",
        "_server_instances",
        True,
        "whether a session id is open (the fast lane's owns_session)",
    ),
    Reliance(
        "mcp",
        "mcp.server.streamable_http_manager.StreamableHTTPSessionManager",
        "_session_owners",
        True,
        "who opened a session (the fast lane's owns_session)",
    ),
    Reliance(
        "mcp",
        "mcp.server.session.ServerSession",
        "_connection",
        True,
        "the client connection behind a request (listChanged notifications)",
    ),
    Reliance(
        "httpx2",
        "httpx2.AsyncHTTPTransport",
        "_pool",
        True,
        "the connection pool whose network backend upstream.guard wraps",
    ),
    Reliance(
        "httpcore2",
        "httpcore2.AsyncConnectionPool",
        "_network_backend",
        True,
        "the backend upstream.guard wraps to check each connection's peer address",
    ),
    Reliance(
        "sse-starlette",
        "sse_starlette.sse.AppStatus",
        "disable_automatic_graceful_drain",
        False,
        "keep SSE streams open on SIGTERM (serving.py's grace period)",
    ),
    Reliance(
        "sse-starlette",
        "sse_starlette.sse.AppStatus",
        "should_exit",
        False,
        "end the SSE streams after the grace period (serving.py)",
    ),
)


# -- StreamableHTTPSessionManager ----------------------------------------------------------


def session_is_open(manager: StreamableHTTPSessionManager, session_id: str) -> bool:
    """Whether ``session_id`` is one of ``manager``'s open sessions."""
    return session_id in manager._server_instances


def session_owner(manager: StreamableHTTPSessionManager, session_id: str) -> Any:
    """The authorization context that opened ``session_id`` (None if none did)."""
    return manager._session_owners.get(session_id)


def sessions_owned(manager: StreamableHTTPSessionManager, prefix: str) -> int:
    """How many of ``manager``'s open sessions were opened by a client id starting ``prefix``."""
    owners: list[Any] = list(manager._session_owners.values())  # AuthorizationContext dicts
    return len([o for o in owners if str(o.get("client_id") or "").startswith(prefix)])


# -- ServerSession ---------------------------------------------------------------------------


def connection_of(ctx: ServerRequestContext[Any]) -> Connection:
    """The client's connection (its standalone stream), which outlives the request.

    ``ctx.session`` is made afresh for each request; the SDK exposes the connection it
    wraps only as ``_connection``."""
    connection: Connection = ctx.session._connection
    return connection


# -- httpx2's transport ----------------------------------------------------------------------


def wrap_network_backend(transport: Any, wrap: Any) -> None:
    """Replace the network backend of ``transport``'s pool (an httpx2
    ``AsyncHTTPTransport`` without a proxy) by ``wrap(backend)``."""
    pool = transport._pool
    pool._network_backend = wrap(pool._network_backend)


# -- sse-starlette's AppStatus ---------------------------------------------------------------


def keep_sse_streams_on_exit() -> None:
    """SIGTERM no longer ends every SSE stream at once (:func:`end_sse_streams` does)."""
    from sse_starlette.sse import AppStatus

    AppStatus.disable_automatic_graceful_drain()  # type: ignore[no-untyped-call]


def end_sse_streams() -> None:
    """End every open SSE stream of this process (their answers are sent)."""
    from sse_starlette.sse import AppStatus

    AppStatus.should_exit = True


def sse_streams_ending() -> bool:
    from sse_starlette.sse import AppStatus

    return bool(AppStatus.should_exit)
