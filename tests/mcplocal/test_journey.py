"""The full journey: mcpd (SQLite) + two real upstreams + ``mcplocal serve``, driven by the
official MCP Python SDK client over real HTTP with McpTokens."""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

import anyio
import httpx
import httpx2
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.mcpd.test_instances import mcp_session, stdio_spec, text
from tests.mcplocal.conftest import Stack
from tests.servers.launch import free_port, start_http


def token(stack: Stack, name: str, project: str, *bindings: str) -> str:
    body = {"name": name, "project": project, "bindings": list(bindings)}
    raw: str = stack.mcpd.ok("POST", "/mcptokens", json=body)["token"]
    return raw


def start_http_upstream(port: int) -> subprocess.Popen[bytes]:
    return start_http("demo", port)


def relayed(metrics_url: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", httpx.get(metrics_url).text, re.M)
    return float(found.group(1)) if found else 0.0


def test_journey(stack: Stack) -> None:
    m = stack.mcpd
    url = f"{stack.mcplocal}/mcp"
    up_port = free_port()
    alpha = start_http_upstream(up_port)
    try:
        m.server("alpha", {"transport": "http", "http": {"url": f"http://127.0.0.1:{up_port}/mcp"}})
        m.server("beta", stdio_spec("demo"))
        m.ok("POST", "/projects", json={"name": "web", "servers": ["alpha", "beta"]})
        only_alpha = token(stack, "alpha-only", "web", "role:run,resource:servers,name:alpha")
        both = token(stack, "both", "web", "role:run,resource:servers")

        # a token with `run` on one server sees, and may call, only that server's tools
        steps: list[float] = []

        async def step(progress: float, total: float | None, message: str | None) -> None:
            steps.append(progress)

        async def alpha_only() -> tuple[set[str], str, list[str]]:
            async with mcp_session(url, only_alpha) as s:
                names = {t.name for t in (await s.list_tools()).tools}
                added = text(await s.call_tool("alpha__add", {"a": 2, "b": 3}))
                # progress crosses both hops (each relays it: upstream/relay)
                counted = await s.call_tool("alpha__count", {"n": 2}, progress_callback=step)
                assert text(counted) == "counted to 2" and steps == [1, 2]
                errors = []
                for hidden in ("beta__add", "nope__add"):
                    try:
                        await s.call_tool(hidden, {"a": 1, "b": 1})
                        errors.append("")
                    except MCPError as exc:
                        errors.append(f"{exc.code} {exc.message.replace(hidden, 'X')}")
                return names, added, errors

        names, added, errors = anyio.run(alpha_only)
        assert names == {
            f"alpha__{t}" for t in ("add", "echo", "sleep", "cancelled", "count", "fail")
        }
        assert added == "5"
        assert errors[0] == errors[1] and errors[0]  # forbidden == unknown: nothing leaks

        # kill one upstream: the other still works, the dead one's calls name it
        alpha.kill()
        alpha.wait()

        async def with_alpha_dead() -> tuple[set[str], Any, str]:
            async with mcp_session(url, both) as s:
                dead = await s.call_tool("alpha__add", {"a": 1, "b": 1})
                names = {t.name for t in (await s.list_tools()).tools}
                ok = text(await s.call_tool("beta__add", {"a": 4, "b": 4}))
                return names, dead, ok

        names, dead, ok = anyio.run(with_alpha_dead)
        assert dead.is_error and "alpha" in text(dead)
        assert ok == "8"
        assert {"beta__add", "beta__echo"} <= names

        # restart it: its tools come back
        alpha = start_http_upstream(up_port)

        async def tools_back() -> tuple[str, set[str]]:
            """Its tools are listed and callable again (within 30 s); the first call that
            finds it back may be the one that wakes mcpd's instance out of its backoff."""
            deadline = time.monotonic() + 30
            async with mcp_session(url, both) as s:
                while True:
                    called = text(await s.call_tool("alpha__add", {"a": 1, "b": 2}))
                    names = {t.name for t in (await s.list_tools()).tools}
                    if (called == "3" and "alpha__add" in names) or time.monotonic() > deadline:
                        return called, names
                    await anyio.sleep(0.2)

        called, names = anyio.run(tools_back)
        assert called == "3" and "alpha__add" in names, (
            f"{called}\nupstream alive: {alpha.poll() is None}\n"
            f"instance: {m.instance('alpha')}\nlog:\n{m.logs('alpha')}"
        )

        # every call is audited in mcpd, with the token's name and sha
        deadline = time.monotonic() + 10
        while True:
            calls = m.ok("GET", "/auditevents", params={"action": "call"})["items"]
            if len(calls) >= 4 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        mine = [e for e in calls if e["tokenName"] == "alpha-only"]
        assert mine and mine[-1]["name"] == "alpha__add" and mine[-1]["tokenSha"]
        assert mine[-1]["detail"]["durationMs"] >= 0
        assert any(e["outcome"] == "error" and e["name"] == "alpha__add" for e in calls)

        # the calls to alpha (http, RUNNING) took the fast lane in both mcplocal and mcpd
        assert relayed(f"{stack.mcplocal}/metrics", "mcplocal_relayed_calls_total") >= 3
        assert relayed(f"{m.base}/metrics", "mcpd_relayed_calls_total") >= 3

        # revoke: the next request is refused within a second
        m.ok("POST", "/mcptokens/alpha-only/revoke")
        revoked_at = time.monotonic()
        while True:
            r = httpx.post(
                url,
                headers={"Authorization": f"Bearer {only_alpha}", "Accept": "application/json"},
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            )
            if r.status_code == 401:
                break
            assert time.monotonic() - revoked_at < 1.0, "revocation not enforced within 1 s"
            time.sleep(0.02)
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
    finally:
        alpha.kill()
        alpha.wait()


def test_unauthenticated_gets_the_rfc9728_challenge(stack: Stack) -> None:
    r = httpx.post(f"{stack.mcplocal}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert r.status_code == 401
    challenge = r.headers["www-authenticate"]
    # no credential at all: no error code (RFC 6750 3.1), the metadata to start OAuth from
    assert challenge.startswith("Bearer ") and "error=" not in challenge.replace("error_", "")
    assert f'resource_metadata="{stack.mcplocal}/.well-known/oauth-protected-resource"' in challenge
    assert "static McpToken (mcpctl_pat_" in challenge
    meta = httpx.get(f"{stack.mcplocal}/.well-known/oauth-protected-resource").json()
    assert meta["resource"] == f"{stack.mcplocal}/mcp"
    assert meta["authorization_servers"] == [stack.mcpd.base]  # mcpd, by default
    assert meta["scopes_supported"] == ["mcp"] and "mcpctl_pat_" in meta["mcpctl_bearer"]
    bad = httpx.post(
        f"{stack.mcplocal}/mcp",
        headers={"Authorization": "Bearer mcpctl_pat_" + "A" * 43},
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
    )
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]
    assert httpx.get(f"{stack.mcplocal}/readyz").json()["status"] == "ok"
    assert "mcplocal_mcp_requests_total" in httpx.get(f"{stack.mcplocal}/metrics").text
    # DNS rebinding: an unknown Host is refused before anything else
    other = httpx.post(
        f"{stack.mcplocal}/mcp",
        headers={"Host": "evil.example.com", "Authorization": "Bearer x"},
        json={},
    )
    assert other.status_code in (401, 421)


def test_list_changed_reaches_the_client_when_an_upstream_goes_down(stack: Stack) -> None:
    """upstream dies -> mcpd's instance goes down -> mcpd tells mcplocal (listChanged) ->
    mcplocal re-lists and tells its client, whose next listing lacks the dead tools."""
    m = stack.mcpd
    port = free_port()
    alpha = start_http_upstream(port)
    try:
        m.server("alpha", {"transport": "http", "http": {"url": f"http://127.0.0.1:{port}/mcp"}})
        m.server("beta", stdio_spec("demo"))
        m.ok("POST", "/projects", json={"name": "web", "servers": ["alpha", "beta"]})
        both = token(stack, "both", "web", "role:run,resource:servers")
        changed = anyio.Event()

        async def on_message(message: Any) -> None:
            if isinstance(message, types.ToolListChangedNotification):
                changed.set()

        async def flow() -> tuple[set[str], set[str]]:
            headers = {"Authorization": f"Bearer {both}"}
            async with (
                httpx2.AsyncClient(headers=headers, timeout=30) as http,
                streamable_http_client(f"{stack.mcplocal}/mcp", http_client=http) as (r, w),
                ClientSession(r, w, message_handler=on_message) as s,
            ):
                await s.initialize()
                before = {t.name for t in (await s.list_tools()).tools}
                await s.call_tool("alpha__add", {"a": 1, "b": 1})
                alpha.kill()
                # an http upstream's death is noticed on the next call (or probe)
                dead = await s.call_tool("alpha__add", {"a": 1, "b": 1})
                assert dead.is_error
                with anyio.fail_after(10):
                    await changed.wait()
                after = {t.name for t in (await s.list_tools()).tools}
                return before, after

        before, after = anyio.run(flow)
        assert "alpha__add" in before and "beta__add" in before
        assert "alpha__add" not in after and "beta__add" in after
    finally:
        alpha.kill()
        alpha.wait()
