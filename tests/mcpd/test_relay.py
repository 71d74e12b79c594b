"""The fast lane for tools/call (upstream/relay) through mcpd's per-server endpoint.

* with the SDK's own client: calls to an http upstream are relayed
  (``mcpd_relayed_calls``), answers, tool errors and progress arrive as they would through
  the SDK path, a cancelled call is cancelled upstream, and an upstream killed mid-call
  gives an error result naming the server at once;
* what must not be relayed is not: a forbidden tool (refused and audited by the SDK
  path), another protocol version, a session that is someone else's.

The relay's upstream side alone (``UpstreamHttp``): tests/upstream/test_relay.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.mcpd.test_instances import (
    ROOT,
    Mcpd,
    make_settings,
    mcp_session,
    mcp_url,
    run,
    serve_mcpd,
    settings_with_policy,
    text,
)
from tests.servers.launch import free_port, http_server
from tests.upstream.test_relay import INIT


@pytest.fixture
def mcpd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mcpd]:
    monkeypatch.chdir(ROOT)
    with serve_mcpd(make_settings(f"sqlite:///{tmp_path / 'mcpd.db'}", tmp_path)) as m:
        yield m


def relayed(m: Mcpd) -> float:
    metrics = httpx.get(f"{m.base}/metrics").text
    found = re.search(r"^mcpd_relayed_calls_total (\S+)$", metrics, re.M)
    return float(found.group(1)) if found else 0.0


def remote(m: Mcpd, port: int) -> None:
    """Register the upstream on ``port`` as server `remote`, and start its instance (a call
    made while it starts waits for it, then is relayed: tests/mcpd/test_stdio_lane.py)."""
    m.server("remote", {"transport": "http", "http": {"url": f"http://127.0.0.1:{port}/mcp"}})

    async def start() -> None:
        async with mcp_session(mcp_url(m, "remote"), m.admin) as s:
            await s.send_ping()

    run(start)
    m.wait_instance("remote", lambda i: i["status"] == "RUNNING")


def test_calls_are_relayed_with_results_errors_and_progress(mcpd: Mcpd) -> None:
    m = mcpd
    with http_server("demo") as (port, _):
        remote(m, port)

        async def flow() -> tuple[list[str], Any, list[tuple[float, float | None, str | None]]]:
            seen: list[tuple[float, float | None, str | None]] = []

            async def progress(p: float, total: float | None, message: str | None) -> None:
                seen.append((p, total, message))

            async with mcp_session(mcp_url(m, "remote"), m.admin) as s:
                added = [text(await s.call_tool("add", {"a": i, "b": i})) for i in range(5)]
                failed = await s.call_tool("fail", {})
                counted = await s.call_tool("count", {"n": 3}, progress_callback=progress)
                return [*added, text(counted)], failed, seen

        before = relayed(m)
        answers, failed, seen = run(flow)
        assert answers == ["0", "2", "4", "6", "8", "counted to 3"]
        assert failed.is_error and text(failed) == "Error executing tool fail"  # as the SDK says
        assert seen == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
        assert relayed(m) - before == 7  # every call took the fast lane


def test_a_cancelled_call_is_cancelled_upstream(mcpd: Mcpd) -> None:
    m = mcpd
    with http_server("demo") as (port, _):
        remote(m, port)

        async def flow() -> str:
            async with mcp_session(mcp_url(m, "remote"), m.admin) as s:
                with anyio.move_on_after(0.5):  # the SDK client sends notifications/cancelled
                    await s.call_tool("sleep", {"seconds": 30})
                deadline = time.monotonic() + 5
                while True:
                    count = text(await s.call_tool("cancelled", {}))
                    if count == "1" or time.monotonic() > deadline:
                        return count
                    await anyio.sleep(0.05)

        before = relayed(m)
        assert run(flow) == "1"
        assert relayed(m) - before >= 2

        async def gone_away() -> None:
            """The caller's connection closes mid-call: the upstream request is cancelled."""
            async with httpx.AsyncClient(timeout=10, headers=m.h()) as client:
                init = await client.post(
                    mcp_url(m, "remote"),
                    json=INIT,
                    headers={"Accept": "application/json, text/event-stream"},
                )
                sid = init.headers["mcp-session-id"]
                h = {
                    "Accept": "application/json, text/event-stream",
                    "Mcp-Session-Id": sid,
                    "MCP-Protocol-Version": "2025-11-25",
                }
                await client.post(
                    mcp_url(m, "remote"),
                    json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                    headers=h,
                )
                call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                        "params": {"name": "sleep", "arguments": {"seconds": 30}}}  # fmt: skip
                with anyio.move_on_after(0.5):
                    await client.post(mcp_url(m, "remote"), json=call, headers=h)

        run(gone_away)

        async def count() -> str:
            async with mcp_session(mcp_url(m, "remote"), m.admin) as s:
                deadline = time.monotonic() + 5
                while True:
                    got = text(await s.call_tool("cancelled", {}))
                    if got == "2" or time.monotonic() > deadline:
                        return got

        assert run(count) == "2"


def test_an_upstream_killed_mid_call(mcpd: Mcpd) -> None:
    m = mcpd
    port = free_port()
    with http_server("demo", port) as (_, proc):
        remote(m, port)

        async def flow() -> tuple[Any, float]:
            async with mcp_session(mcp_url(m, "remote"), m.admin) as s:
                assert text(await s.call_tool("add", {"a": 1, "b": 1})) == "2"
                async with anyio.create_task_group() as tg:

                    async def kill() -> None:
                        await anyio.sleep(0.3)
                        proc.kill()

                    tg.start_soon(kill)
                    began = time.monotonic()
                    result = await s.call_tool("sleep", {"seconds": 30})
                    return result, time.monotonic() - began - 0.3

        result, took = run(flow)
        assert result.is_error and "`remote`" in text(result)
        assert took < 1.0
    with http_server("demo", port):  # back on the same port: calls work again

        async def again() -> str:
            deadline = time.monotonic() + 20
            async with mcp_session(mcp_url(m, "remote"), m.admin) as s:
                while True:
                    result = await s.call_tool("add", {"a": 2, "b": 2})
                    if not result.is_error or time.monotonic() > deadline:
                        return text(result)
                    await anyio.sleep(0.2)

        assert run(again) == "4"


def test_what_must_not_be_relayed_is_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    settings = settings_with_policy(
        tmp_path, "p, User:bob@example.com, *, tools, remote__echo, role:run, deny"
    )
    with serve_mcpd(settings) as m, http_server("demo") as (port, _):
        remote(m, port)
        bob = m.login("bob@example.com", "role:run,resource:servers")

        async def as_bob() -> tuple[str, str]:
            async with mcp_session(mcp_url(m, "remote"), bob) as s:
                added = text(await s.call_tool("add", {"a": 1, "b": 2}))
                try:
                    await s.call_tool("echo", {"text": "x"})
                    refused = ""
                except Exception as exc:  # MCPError
                    refused = str(exc)
                return added, refused

        before = relayed(m)
        added, refused = run(as_bob)
        assert added == "3" and "Unknown tool" in refused
        assert relayed(m) - before == 1  # the forbidden call went the SDK way
        denies = m.ok("GET", "/auditevents", params={"kind": "tools", "outcome": "deny"})["items"]
        assert any(e["name"] == "remote__echo" for e in denies)

        # another protocol version, and a session that is not the caller's
        with httpx.Client(timeout=10) as client:
            accept = {"Accept": "application/json, text/event-stream"}
            init = client.post(mcp_url(m, "remote"), json=INIT, headers={**m.h(), **accept})
            sid = init.headers["mcp-session-id"]
            h = {**m.h(), **accept, "Mcp-Session-Id": sid}
            client.post(
                mcp_url(m, "remote"),
                json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                headers={**h, "MCP-Protocol-Version": "2025-11-25"},
            )
            call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                    "params": {"name": "add", "arguments": {"a": 2, "b": 5}}}  # fmt: skip
            before = relayed(m)
            older = client.post(
                mcp_url(m, "remote"), json=call, headers={**h, "MCP-Protocol-Version": "2025-06-18"}
            )
            assert older.status_code == 200 and '"text":"7"' in older.text.replace(" ", "")
            assert relayed(m) == before
            stolen = client.post(
                mcp_url(m, "remote"),
                json=call,
                headers={**h, **{"Authorization": f"Bearer {bob}"},
                         "MCP-Protocol-Version": "2025-11-25"},
            )  # fmt: skip
            assert stolen.status_code == 404  # the SDK's answer for someone else's session
            assert relayed(m) == before
            mine = client.post(
                mcp_url(m, "remote"), json=call, headers={**h, "MCP-Protocol-Version": "2025-11-25"}
            )
            assert mine.status_code == 200 and '"text":"7"' in mine.text.replace(" ", "")
            assert relayed(m) == before + 1


def test_a_name_that_rebinds_to_mcpd_itself_is_refused_at_connect(
    mcpd: Mcpd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: `rebind.test` resolves to a public address when the server is
    written (the URL check passes), then to mcpd's own. Every connection is checked on the
    address it reached, so the instance never sends its headers to mcpd itself."""
    from mcpd import addresses

    m = mcpd
    port = int(m.base.rsplit(":", 1)[1])
    public = addresses._ip("93.184.215.14")
    with monkeypatch.context() as written:
        written.setattr(addresses, "_resolve", lambda host, port: [public])
        m.server("rebind", {"transport": "http", "http": {"url": f"http://localhost:{port}/mcp"}})

    async def call() -> Any:
        async with mcp_session(mcp_url(m, "rebind"), m.admin) as s:
            return await s.call_tool("anything", {})

    result = run(call)
    assert result.is_error and "rebind" in text(result), result
    inst = m.instance("rebind")
    logs = m.call("GET", "/servers/rebind/logs").text
    assert "refused to connect to localhost" in logs and "mcpd's own address" in logs, (inst, logs)


def test_a_quick_answer_is_one_plain_body_and_a_slow_one_streams(mcpd: Mcpd) -> None:
    """A relayed call answered at once goes out as one SSE event in a plain body (head and
    event in one write, a Content-Length); one slower than 50 ms gets its head then, and
    its events chunked as they come (upstream/relay/lane.py's RelayedAnswer)."""
    m = mcpd
    with http_server("demo") as (port, _):
        remote(m, port)
        url = mcp_url(m, "remote")
        head = {**m.h(), "Accept": "application/json, text/event-stream"}
        with httpx.Client(timeout=30) as client:
            r = client.post(url, json=INIT, headers=head)
            assert r.status_code == 200, r.text
            head["mcp-session-id"] = r.headers["mcp-session-id"]
            head["mcp-protocol-version"] = "2025-11-25"
            done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            assert client.post(url, json=done, headers=head).status_code == 202
            before = relayed(m)

            def call(n: int, tool: str, args: dict[str, Any]) -> httpx.Response:
                body = {"jsonrpc": "2.0", "id": n, "method": "tools/call",
                        "params": {"name": tool, "arguments": args}}  # fmt: skip
                return client.post(url, json=body, headers=head)

            quick = call(1, "add", {"a": 2, "b": 3})
            assert quick.status_code == 200
            assert quick.headers["content-type"] == "text/event-stream"
            assert quick.headers["content-length"] == str(len(quick.content))
            assert "transfer-encoding" not in quick.headers
            events = [ln for ln in quick.text.splitlines() if ln.startswith("data: ")]
            assert len(events) == 1 and '"id":1' in events[0] and '"text":"5"' in events[0]

            # the result is the upstream's own bytes (UTF-8 as it sent it, not re-escaped)
            echoed = call(3, "echo", {"text": "déjà vu"})
            assert "déjà vu".encode() in echoed.content and b"\\u00e9" not in echoed.content

            slow = call(2, "sleep", {"seconds": 0.3})
            assert slow.status_code == 200
            assert slow.headers.get("transfer-encoding") == "chunked"
            assert "content-length" not in slow.headers
            assert '"id":2' in slow.text and '"isError":false' in slow.text
            assert relayed(m) - before == 3
