"""Every private SDK attribute upstream/sdk_compat.py relies on is still there.

One test per entry of ``sdk_compat.RELIED_ON``, checked on real objects where they are
cheap (a StreamableHTTPSessionManager, the ServerSession of a request served in-process),
else on the class. An SDK upgrade that removes one fails here, naming it, rather than as
a fast lane that quietly stops or a listChanged that is never sent.
"""

from __future__ import annotations

import importlib
import re
from importlib.metadata import version
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp.client.client import Client
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from upstream import sdk_compat
from upstream.sdk_compat import RELIED_ON, Reliance


def _class(reliance: Reliance) -> Any:
    module, _, name = reliance.owner.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _served_context() -> ServerRequestContext[Any]:
    """The context of a real request, served in-process by a low-level server."""
    seen: list[ServerRequestContext[Any]] = []

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        seen.append(ctx)
        return types.ListToolsResult(tools=[])

    async def flow() -> None:
        async with Client(Server("compat", on_list_tools=list_tools)) as client:
            await client.list_tools()

    anyio.run(flow)
    return seen[0]


def _real_objects() -> dict[str, Any]:
    """A real object of each class whose instances carry the attributes."""
    ctx = _served_context()
    transport = httpx2.AsyncHTTPTransport()
    return {
        "httpx2.AsyncHTTPTransport": transport,
        "httpcore2.AsyncConnectionPool": transport._pool,
        "mcp.server.streamable_http_manager.StreamableHTTPSessionManager": (
            StreamableHTTPSessionManager(Server("compat"))
        ),
        "mcp.server.session.ServerSession": ctx.session,
        "context": ctx,
    }


@pytest.fixture(scope="module")
def real_objects() -> dict[str, Any]:
    return _real_objects()


@pytest.mark.parametrize("reliance", RELIED_ON, ids=lambda r: f"{r.owner}.{r.attribute}")
def test_the_sdk_still_has_it(reliance: Reliance, real_objects: dict[str, Any]) -> None:
    cls = _class(reliance)
    where = real_objects.get(reliance.owner, cls) if reliance.on_instance else cls
    if reliance.on_instance:
        assert where is not cls, f"no real {reliance.owner} to check {reliance.attribute} on"
        assert isinstance(where, cls)
    assert hasattr(where, reliance.attribute), (
        f"{reliance.distribution} {version(reliance.distribution)} no longer has "
        f"{cls.__name__}.{reliance.attribute}: upstream/sdk_compat.py relies on it "
        f"({reliance.why})"
    )


def test_what_sdk_compat_reads_works_on_real_objects(real_objects: dict[str, Any]) -> None:
    manager = real_objects["mcp.server.streamable_http_manager.StreamableHTTPSessionManager"]
    assert sdk_compat.session_is_open(manager, "no-such-session") is False
    assert sdk_compat.session_owner(manager, "no-such-session") is None
    assert isinstance(sdk_compat.connection_of(real_objects["context"]), Connection)
    assert sdk_compat.sse_streams_ending() in (False, True)
    transport = real_objects["httpx2.AsyncHTTPTransport"]
    before = real_objects["httpcore2.AsyncConnectionPool"]._network_backend
    sdk_compat.wrap_network_backend(transport, lambda inner: ("wrapped", inner))
    assert transport._pool._network_backend == ("wrapped", before)


def test_every_private_read_is_declared() -> None:
    """Each ``._name`` sdk_compat reads on an SDK object is in RELIED_ON."""
    source = importlib.import_module("upstream.sdk_compat").__file__
    assert source is not None
    with open(source, encoding="utf-8") as f:
        text = f.read()
    read = set(re.findall(r"(?:manager|session|transport|pool)\._([a-z_]+)", text))
    declared = {r.attribute.lstrip("_") for r in RELIED_ON}
    assert read <= declared, f"read but not in RELIED_ON: {sorted(read - declared)}"
