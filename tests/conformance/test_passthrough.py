"""What the suite does not look at closely, through mcpd's per-server endpoint and mcplocal,
with the SDK's own client against tests/servers/conformance_server.py:

* two callers at once: the upstream's sampling request reaches only the caller whose
  call made it, and each gets its own answer back; a caller that did not declare
  sampling is refused for it (the server says so in its result);
* a stream the upstream closes mid-call (SEP-1699) is resumed: the call completes;
* ``notifications/resources/updated`` reaches the subscribed caller;
* DNS rebinding: a foreign Host or Origin is refused, loopback ones are accepted;
* a stateless mcplocal refuses what needs a session (sampling, subscriptions), saying so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.mcpd.test_instances import text
from tests.mcplocal.conftest import MCPLOCAL, Stack, mcplocal_env
from tests.mcplocal.test_journey import token
from tests.replicas.cluster import process
from tests.servers.launch import free_port, http_server

SERVER = "conf"


@asynccontextmanager
async def session(
    url: str, bearer: str, *, answer: str | None = None, seen: list[Any] | None = None
) -> AsyncIterator[ClientSession]:
    """A client session; with ``answer``, it declares sampling and answers with that text."""

    async def sample(context: Any, params: types.CreateMessageRequestParams) -> Any:
        assert answer is not None
        await anyio.sleep(0.2)  # both callers' requests are in flight at once
        content = types.TextContent(type="text", text=answer)
        return types.CreateMessageResult(role="assistant", content=content, model="test")

    async def on_message(message: Any) -> None:
        if seen is not None:
            seen.append(message)

    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {bearer}"}, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(
            read,
            write,
            sampling_callback=sample if answer is not None else None,
            message_handler=on_message,
        ) as s,
    ):
        await s.initialize()
        yield s


async def callers_apart(url: str, bearer: str, tool: str) -> dict[str, str]:
    got: dict[str, str] = {}

    async def one(who: str | None) -> None:
        async with session(url, bearer, answer=who) as s:
            result = await s.call_tool(tool, {"prompt": "hi"})
            got[who or "none"] = text(result)

    async with anyio.create_task_group() as tg:
        for who in ("alice", "bob", None):
            tg.start_soon(one, who)
    return got


async def resumed_and_updated(url: str, bearer: str) -> tuple[str, list[Any]]:
    seen: list[Any] = []
    async with session(url, bearer, seen=seen) as s:
        done = text(await s.call_tool(TOOL_PREFIX.get(url, "") + "test_reconnection", {}))
        params = types.SubscribeRequestParams(uri="test://watched-resource")
        await s.send_request(types.SubscribeRequest(params=params), types.EmptyResult)
        with anyio.fail_after(10):
            while not any(isinstance(m, types.ResourceUpdatedNotification) for m in seen):
                await anyio.sleep(0.05)
    return done, seen


TOOL_PREFIX: dict[str, str] = {}


def check_callers(got: dict[str, str]) -> None:
    assert got["alice"] == "LLM response: alice"
    assert got["bob"] == "LLM response: bob"
    assert got["none"].startswith("Sampling not supported or error")
    assert "does not support sampling" in got["none"]


def test_through_mcpd_and_mcplocal(stack: Stack) -> None:
    m = stack.mcpd
    with http_server("conformance") as (port, _):
        m.server(SERVER, {"transport": "http", "http": {"url": f"http://127.0.0.1:{port}/mcp"}})
        m.ok("POST", "/projects", json={"name": "p", "servers": [SERVER]})
        bearer = token(stack, "pt", "p", "role:run,resource:servers")
        mcpd_url = f"{m.base}/api/v1/servers/{SERVER}/mcp"
        local_url = f"{stack.mcplocal}/mcp"
        TOOL_PREFIX[local_url] = f"{SERVER}__"

        check_callers(anyio.run(callers_apart, mcpd_url, m.admin, "test_sampling"))
        check_callers(anyio.run(callers_apart, local_url, bearer, f"{SERVER}__test_sampling"))

        for url, who in ((mcpd_url, m.admin), (local_url, bearer)):
            done, seen = anyio.run(resumed_and_updated, url, who)
            assert done == "Reconnection test completed"
            logged = [
                n.params.data for n in seen if isinstance(n, types.LoggingMessageNotification)
            ]
            assert "Before disconnect" in logged and "After reconnect" in logged


def test_dns_rebinding_refused_on_both(stack: Stack) -> None:
    m = stack.mcpd
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"},
        },
    }
    with http_server("conformance") as (port, _):
        m.server(SERVER, {"transport": "http", "http": {"url": f"http://127.0.0.1:{port}/mcp"}})
        m.ok("POST", "/projects", json={"name": "p", "servers": [SERVER]})
        bearer = token(stack, "dns", "p", "role:run,resource:servers")
        for url, who in (
            (f"{m.base}/api/v1/servers/{SERVER}/mcp", m.admin),
            (f"{stack.mcplocal}/mcp", bearer),
        ):
            base = {
                "Authorization": f"Bearer {who}",
                "Accept": "application/json, text/event-stream",
                "Content-Type": "application/json",
            }
            loopback_port = url.split(":")[2].split("/")[0]
            for host, origin, ok in (
                ("evil.example.com", "http://evil.example.com", False),
                (f"127.0.0.1:{loopback_port}", "http://evil.example.com", False),
                (f"localhost:{loopback_port}", f"http://localhost:{loopback_port}", True),
                ("[::1]", "http://[::1]", True),
            ):
                headers = {**base, "Host": host, "Origin": origin}
                r = httpx.post(url, headers=headers, json=init, timeout=30)
                assert (r.status_code == 200) is ok, (url, host, origin, r.status_code, r.text)
                if not ok:
                    assert 400 <= r.status_code < 500


def test_stateless_mcplocal_says_what_needs_a_session(stack: Stack, tmp_path: Path) -> None:
    m = stack.mcpd
    port = free_port()
    env = {**mcplocal_env(m, stack.service_token, tmp_path), "MCPLOCAL_STATELESS": "1"}
    argv = [str(MCPLOCAL), "serve", "--host", "127.0.0.1", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with (
        http_server("conformance") as (up, _),
        process(argv, env, f"{base}/readyz", tmp_path / "stateless.log"),
    ):
        m.server(SERVER, {"transport": "http", "http": {"url": f"http://127.0.0.1:{up}/mcp"}})
        m.ok("POST", "/projects", json={"name": "p", "servers": [SERVER]})
        bearer = token(stack, "sl", "p", "role:run,resource:servers")

        async def flow() -> tuple[str, str, str]:
            async with session(f"{base}/mcp", bearer, answer="alice") as s:
                sampled = text(await s.call_tool(f"{SERVER}__test_sampling", {"prompt": "x"}))
                simple = text(await s.call_tool(f"{SERVER}__test_simple_text", {}))
                params = types.SubscribeRequestParams(uri="test://watched-resource")
                try:
                    await s.send_request(types.SubscribeRequest(params=params), types.EmptyResult)
                    refused = ""
                except MCPError as exc:
                    refused = exc.message
            return sampled, simple, refused

        sampled, simple, refused = anyio.run(flow)
        assert simple == "This is a simple text response for testing."
        assert "needs an MCP session" in sampled
        assert "stateless" in refused
