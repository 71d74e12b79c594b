"""The proxy environment: a call to an upstream that ``HTTP_PROXY`` sends through a proxy
goes through it (the SDK path), and one ``NO_PROXY`` covers keeps the fast lane.

The relay's own HTTP/1.1 client connects directly, so where the environment names a proxy
for an upstream URL the instance opens no fast lane. The proxy here is a small forward
HTTP proxy on loopback that counts what it forwards; the upstream is named
``mcp-upstream.invalid``, which only the proxy can reach (it sends every name to
127.0.0.1): a call that went direct would fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest

from tests.mcpd.test_instances import ROOT, make_settings, mcp_session, mcp_url, serve_mcpd, text
from tests.mcpd.test_relay import relayed
from tests.servers.launch import http_server
from upstream.relay import Call
from upstream.spec import UpstreamSpec
from upstream.supervisor import Supervisor, SupervisorSettings

HIDDEN = "mcp-upstream.invalid"  # resolves nowhere: reachable only through the proxy


class ForwardProxy:
    """An HTTP forward proxy: one absolute-form request per client connection, sent on
    with ``connection: close`` to 127.0.0.1 at the URL's port, the answer streamed back.
    ``forwarded`` holds (host, JSON-RPC method or HTTP method) of each request."""

    def __init__(self) -> None:
        self.forwarded: list[tuple[str, str]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def methods(self, host: str) -> list[str]:
        return [method for h, method in self.forwarded if h == host]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line, *fields = head.decode("latin-1").rstrip("\r\n").split("\r\n")
            method, target, version = line.split(" ")
            url = urlsplit(target)
            assert url.scheme == "http" and url.hostname, f"not a forward request: {line}"
            headers = [
                f
                for f in fields
                if f.split(":", 1)[0].strip().lower()
                not in ("connection", "proxy-connection", "keep-alive", "host")
            ]
            length = next(
                (
                    int(f.split(":", 1)[1])
                    for f in fields
                    if f.lower().startswith("content-length:")
                ),
                0,
            )
            body = await reader.readexactly(length) if length else b""
            what = method
            with contextlib.suppress(ValueError):
                what = str(json.loads(body).get("method", "response")) if body else method
            self.forwarded.append((url.hostname, what))
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
            port = url.port or 80
            up_reader, upstream = await asyncio.open_connection("127.0.0.1", port)
            fixed = [f"{method} {path} {version}", f"host: 127.0.0.1:{port}", "connection: close"]
            upstream.write("\r\n".join([*fixed, *headers]).encode("latin-1") + b"\r\n\r\n" + body)
            await upstream.drain()
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (upstream, writer):
                if w is not None:
                    w.close()
                    with contextlib.suppress(Exception):
                        await w.wait_closed()
            self._tasks.discard(task)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task


@contextlib.contextmanager
def forward_proxy() -> Iterator[tuple[int, ForwardProxy]]:
    """The proxy on a loopback port, in a thread of its own: (port, proxy)."""
    proxy = ForwardProxy()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    port: list[int] = []
    stop = asyncio.Event()

    async def serve() -> None:
        server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        started.set()
        async with server:
            await stop.wait()
        await proxy.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield port[0], proxy
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def _supervisor(url: str) -> Supervisor:
    async def load(name: str) -> UpstreamSpec:
        return UpstreamSpec(name, "http", url=url)

    return Supervisor(SupervisorSettings(), load)


def test_a_proxied_upstream_is_called_through_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    with forward_proxy() as (proxy_port, proxy), http_server("demo") as (port, _):
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)

        async def flow() -> tuple[Any, str]:
            sup = _supervisor(f"http://{HIDDEN}:{port}/mcp")
            async with sup.running():
                inst = await sup.instance("demo")
                await inst.ready_session()
                assert inst.relay is None  # no fast lane: it would connect directly
                result = await inst.call_tool("add", {"a": 2, "b": 3})
                return result, "\n".join(inst.log.tail(100)[1])

        result, logs = anyio.run(flow)
    assert text(result) == "5"
    assert "initialize" in proxy.methods(HIDDEN)
    assert "tools/call" in proxy.methods(HIDDEN)  # the call went through the proxy
    assert "no fast lane: the proxy environment applies to its URL" in logs


def test_no_proxy_keeps_the_fast_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    with forward_proxy() as (proxy_port, proxy), http_server("demo") as (port, _):
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port}")
        monkeypatch.setenv("NO_PROXY", "example.com,127.0.0.1")

        async def flow() -> list[dict[str, Any]]:
            sup = _supervisor(f"http://127.0.0.1:{port}/mcp")
            async with sup.running():
                inst = await sup.instance("demo")
                await inst.ready_session()
                assert inst.relay is not None
                request = {
                    "jsonrpc": "2.0",
                    "id": 7,
                    "method": "tools/call",
                    "params": {"name": "add", "arguments": {"a": 2, "b": 3}},
                }
                return [m async for m in Call(inst.relay.upstream, request).messages(10)]

        answers = anyio.run(flow)
    assert answers[-1]["id"] == 7
    assert answers[-1]["result"]["content"][0]["text"] == "5"
    assert proxy.forwarded == []  # neither the SDK path nor the relay used the proxy


def test_through_mcpd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mcpd with the proxy environment set: a call to a proxied upstream is answered
    through the proxy (not relayed), one to an upstream NO_PROXY covers is relayed."""
    monkeypatch.chdir(ROOT)
    with (
        forward_proxy() as (proxy_port, proxy),
        http_server("demo") as (port, _),
        serve_mcpd(make_settings(f"sqlite:///{tmp_path / 'mcpd.db'}", tmp_path)) as m,
    ):
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # mcpd itself, and the `near` upstream
        m.server("far", {"transport": "http", "http": {"url": f"http://{HIDDEN}:{port}/mcp"}})
        m.server("near", {"transport": "http", "http": {"url": f"http://127.0.0.1:{port}/mcp"}})

        async def call(server: str) -> str:
            async with mcp_session(mcp_url(m, server), m.admin) as s:
                await s.send_ping()  # (the instance starts: a call meanwhile takes the SDK path)
                return text(await s.call_tool("add", {"a": 20, "b": 1}))

        async def started(server: str) -> None:
            async with mcp_session(mcp_url(m, server), m.admin) as s:
                await s.send_ping()

        anyio.run(started, "far")
        m.wait_instance("far", lambda i: i["status"] == "RUNNING")
        before = relayed(m)
        assert anyio.run(call, "far") == "21"
        assert relayed(m) == before  # the proxied upstream's calls are not relayed
        assert "tools/call" in proxy.methods(HIDDEN)

        anyio.run(started, "near")
        m.wait_instance("near", lambda i: i["status"] == "RUNNING")
        assert anyio.run(call, "near") == "21"
        assert relayed(m) == before + 1  # NO_PROXY covers it: relayed
        assert proxy.methods("127.0.0.1") == []
