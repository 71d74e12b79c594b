"""The fast lane's upstream side (upstream/relay), against real servers over loopback.

``UpstreamHttp`` keeps connections, and copes with a server that closes one meanwhile,
one that keeps its SSE stream open after the answer, one that never answers, and a 404.
Through mcpd's per-server endpoint: tests/mcpd/test_relay.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import anyio
import pytest

from tests.servers.launch import free_port, http_server
from upstream.relay import Call, ConnectionLost, SessionGone, UpstreamHttp
from upstream.relay import events as _events
from upstream.relay.sse import Event, parse

INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}


async def _session(port: int) -> UpstreamHttp:
    """An upstream session opened by hand, as the relay then uses it."""
    url = f"http://127.0.0.1:{port}/mcp"
    opener = UpstreamHttp(url, {}, None)
    exchange = await opener.post(json.dumps(INIT).encode())
    sid = exchange.headers.get("mcp-session-id", "")
    async for _ in exchange.body():
        pass
    exchange.release()
    opener.close()
    up = UpstreamHttp(url, {"mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}, None)
    done = await up.post(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
    async for _ in done.body():
        pass
    done.release()
    return up


def _call(up: UpstreamHttp, tool: str, request_id: Any = 1, **arguments: Any) -> Call:
    params = {"name": tool, "arguments": arguments}
    return Call(up, {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})


def test_sse_events_are_cut_where_they_end() -> None:
    buffer = bytearray(
        b'event: message\r\ndata: {"a":1}\r\n\r\n: comment\n\ndata: x\ndata: y\n\nda'
    )
    assert _events(buffer) == [b'{"a":1}', b"x\ny"]
    assert buffer == b"da"


def test_priming_events_carry_no_message_but_their_id_and_retry_are_kept() -> None:
    buffer = bytearray(b'id: 7\ndata: \nretry: 1000\n\nid: 8\r\ndata: {"a":1}\r\n\r\n')
    parsed = parse(bytearray(buffer))
    assert parsed == [Event(b"", "7", 1000), Event(b'{"a":1}', "8", None)]
    assert _events(buffer) == [b'{"a":1}']  # the priming event is never handed on as JSON


def test_upstream_http_keeps_its_connections() -> None:
    with http_server("demo") as (port, _):

        async def flow() -> tuple[list[Any], int]:
            up = await _session(port)
            opened = 0
            connect = up._connect

            async def counting() -> Any:
                nonlocal opened
                opened += 1
                return await connect()

            up._connect = counting  # type: ignore[method-assign]
            answers = []
            for i in range(20):
                answers += [m async for m in _call(up, "add", f"req-{i}", a=i, b=1).messages(10)]
            up.close()
            return answers, opened

        answers, opened = anyio.run(flow)
    assert [a["id"] for a in answers] == [f"req-{i}" for i in range(20)]  # the caller's ids
    assert [a["result"]["content"][0]["text"] for a in answers] == [str(i + 1) for i in range(20)]
    assert opened <= 1  # one kept connection served them all


def test_a_connection_closed_by_the_server_meanwhile_is_replaced() -> None:
    """A plain server that closes each connection 50 ms after answering on it, without
    saying so: the next request finds the kept connection dead and uses a new one."""
    answer = b'{"jsonrpc":"2.0","id":"%s","result":{"content":[],"isError":false}}'

    async def flow() -> list[Any]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))  # type: ignore[union-attr]
            body = json.loads(await reader.readexactly(length))
            data = answer % body["id"].encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(data), data)
            )
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        up = UpstreamHttp(f"http://127.0.0.1:{port}/mcp", {}, None)
        got = []
        for i in range(3):
            got += [m async for m in _call(up, "x", i).messages(5)]
            await asyncio.sleep(0.2)  # the server has closed the kept connection by now
        up.close()
        server.close()
        return got

    assert [m["id"] for m in anyio.run(flow)] == [0, 1, 2]


def test_lingering_hanging_and_missing_upstreams() -> None:
    with http_server("lingering") as (port, _):

        async def lingering() -> list[Any]:
            up = UpstreamHttp(f"http://127.0.0.1:{port}/mcp", {}, None)
            started = time.monotonic()
            got = [m async for m in _call(up, "fine").messages(10)]
            assert time.monotonic() - started < 2  # not held by the stream left open
            up.close()
            return got

        assert [m["id"] for m in anyio.run(lingering)] == [1]

    with http_server("hang") as (port, _):

        async def hanging() -> None:
            up = UpstreamHttp(f"http://127.0.0.1:{port}/mcp", {}, None)
            with pytest.raises(TimeoutError):
                async for _ in _call(up, "x").messages(0.5):
                    pass
            up.close()

        anyio.run(hanging)

    with http_server("notfound") as (port, _):

        async def gone() -> None:
            up = UpstreamHttp(f"http://127.0.0.1:{port}/mcp", {}, None)
            with pytest.raises(SessionGone):
                async for _ in _call(up, "x").messages(5):
                    pass
            up.close()

        anyio.run(gone)

    async def refused() -> None:
        up = UpstreamHttp(f"http://127.0.0.1:{free_port()}/mcp", {}, None)
        with pytest.raises(ConnectionLost, match="cannot connect"):
            async for _ in _call(up, "x").messages(5):
                pass

    anyio.run(refused)


def test_header_values_cannot_break_lines() -> None:
    with pytest.raises(ValueError, match="line break"):
        UpstreamHttp("http://127.0.0.1:1/mcp", {"authorization": "Bearer x\r\nX-Evil: 1"}, None)


def test_a_response_keeps_the_upstream_s_bytes_under_the_caller_s_id() -> None:
    """with_caller_id: the relay's id is replaced in the upstream's own bytes when it is
    certainly the message's id (it opens the message, as the SDKs write it); otherwise
    None, and the relay serializes the parsed message again."""
    from upstream.relay.call import with_caller_id

    body = '{"jsonrpc":"2.0","id":"mcpd-relay-7","result":{"content":[{"type":"text","text":"é"}]}}'
    data = body.encode()
    assert with_caller_id(data, "mcpd-relay-7", 12) == data.replace(b'"mcpd-relay-7"', b"12")
    assert with_caller_id(data, "mcpd-relay-7", 'a"b') == data.replace(
        b'"mcpd-relay-7"', b'"a\\"b"'
    )
    spaced = b'{ "jsonrpc": "2.0", "id": "mcpd-relay-7", "result": {}}'
    assert (
        with_caller_id(spaced, "mcpd-relay-7", 1) == b'{ "jsonrpc": "2.0", "id": 1, "result": {}}'
    )
    for unsure in (
        b'{"id":"mcpd-relay-7","jsonrpc":"2.0","result":{}}',  # another order
        b'{"jsonrpc":"2.0","result":{"id":"mcpd-relay-7"},"id":"mcpd-relay-7"}',  # id last
        b'{"jsonrpc":"2.0",\n"id":"mcpd-relay-7","result":{}}',  # two lines
        b'{"jsonrpc":"2.0","id":"mcpd-relay-70","result":{}}',  # another call's
    ):
        assert with_caller_id(unsure, "mcpd-relay-7", 1) is None, unsure
