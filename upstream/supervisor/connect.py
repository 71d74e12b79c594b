"""Opening an instance's transport: a stdio child, or an httpx2 client for Streamable HTTP,
and the fast lane to an http upstream (:mod:`upstream.relay`) once its session is open."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx2
from mcp.client.streamable_http import streamable_http_client

from upstream.guard import transport
from upstream.logs import LogBuffer
from upstream.relay import (
    SESSION_HEADER,
    VERSION_HEADER,
    StdioPipe,
    Target,
    UpstreamHttp,
    proxy_for,
)
from upstream.resolve import resolve_argv
from upstream.spec import UpstreamSpec
from upstream.stdio import ChildProcess, child_environment, stdio_transport
from upstream.supervisor.settings import SupervisorSettings

_SSL: ssl.SSLContext | None = None


def ssl_context() -> ssl.SSLContext:
    """One TLS context for every upstream client: each would otherwise load the CA bundle
    again (about 1 MB apiece)."""
    global _SSL
    if _SSL is None:
        _SSL = httpx2.create_ssl_context()
    return _SSL


async def open_transport(
    stack: AsyncExitStack,
    spec: UpstreamSpec,
    settings: SupervisorSettings,
    log: LogBuffer,
    upstream_session: list[str],
    pipe: StdioPipe | None = None,
) -> tuple[Any, Any, ChildProcess | None]:
    """The read and write streams of ``spec``'s transport, entered on ``stack``, and the
    child process of a stdio one (whose pipes ``pipe``, the fast lane, shares). An http
    one puts the session id the upstream gives into ``upstream_session``."""
    read: Any
    write: Any
    if spec.transport == "stdio":
        read, write, child = await stack.enter_async_context(
            stdio_transport(
                resolve_argv(spec.argv, env := child_environment(spec.env)),
                env,
                log,
                stop_grace=settings.stop_grace,
                sandbox=settings.sandbox,
                pipe=pipe,
            )
        )
        return read, write, child

    async def session_id(response: httpx2.Response) -> None:
        if sid := response.headers.get(SESSION_HEADER):
            upstream_session[:] = [sid]

    # The peer guard sees the address each connection reaches; through a proxy from the
    # environment that is the proxy's (the proxy resolves the name), so none is set there.
    guarded = settings.peer_guard is not None and proxy_for(spec.url) is None
    client = await stack.enter_async_context(
        httpx2.AsyncClient(
            headers=spec.headers,
            auth=spec.auth.flow if spec.auth is not None else None,
            verify=ssl_context(),
            timeout=httpx2.Timeout(30.0, read=settings.call_timeout),
            event_hooks={"response": [session_id]},
            transport=transport(ssl_context(), settings.peer_guard) if guarded else None,
        )
    )
    read, write = await stack.enter_async_context(
        streamable_http_client(spec.url, http_client=client)
    )
    return read, write, None


def open_relay(
    spec: UpstreamSpec,
    settings: SupervisorSettings,
    log: LogBuffer,
    session_id: list[str],
    version: str,
    lost: Callable[[str], None],
) -> Target | None:
    """The fast lane to ``spec``'s open session, or None: its calls take the SDK path (an
    upstream the proxy environment sends through a proxy, which the lane cannot cross)."""
    if proxy_for(spec.url) is not None:
        log.append("no fast lane: the proxy environment applies to its URL", source="mcpd")
        return None
    headers = {**spec.headers, VERSION_HEADER: version}
    if session_id:
        headers[SESSION_HEADER] = session_id[0]
    try:
        upstream = UpstreamHttp(
            spec.url, headers, ssl_context(), settings.peer_guard, live=spec.auth
        )
    except ValueError as exc:  # calls take the SDK path, which says what is wrong
        log.append(f"no fast lane: {exc}", source="mcpd")
        return None
    return Target(upstream, version, spec.name, settings.call_timeout, lost)
