"""The fast lane to stdio upstreams (upstream/relay/pipe.py) through mcpd's per-server endpoint.

The upstream is a real child (tests/servers/stdio_server.py), sandboxed with bubblewrap where
it runs here (mcpd's default ``auto``) and once with bubblewrap required; the callers are the
MCP SDK's own client and plain JSON-RPC over HTTP. Calls are counted as relayed
(``mcpd_relayed_calls``); progress, cancellation (both ways), the child's own requests to the
caller whose call made them, a child crashing mid-call, and callers whose request ids collide.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import mcp_types as types
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.mcpd.test_instances import (
    ROOT,
    Mcpd,
    make_settings,
    mcp_session,
    mcp_url,
    run,
    serve_mcpd,
    stdio_spec,
    text,
)
from tests.mcpd.test_relay import relayed
from tests.upstream.test_relay import INIT
from upstream.sandbox import Sandbox

VERSION = "2025-11-25"
ACCEPT = {"Accept": "application/json, text/event-stream"}


@pytest.fixture
def mcpd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mcpd]:
    monkeypatch.chdir(ROOT)
    with serve_mcpd(make_settings(f"sqlite:///{tmp_path / 'mcpd.db'}", tmp_path)) as m:
        yield m


def local(m: Mcpd, name: str = "local") -> None:
    """Register the stdio demo server as ``name`` and start its instance (a call made while it
    starts waits for it: test_a_call_made_while_the_child_starts_waits_and_is_relayed)."""
    m.server(name, stdio_spec("demo"))

    async def start() -> None:
        async with mcp_session(mcp_url(m, name), m.admin) as s:
            await s.send_ping()

    run(start)
    m.wait_instance(name, lambda i: i["status"] == "RUNNING")


def test_calls_are_relayed_with_results_errors_and_progress(mcpd: Mcpd) -> None:
    m = mcpd
    local(m)

    async def flow() -> tuple[list[str], Any, list[tuple[float, float | None, str | None]]]:
        seen: list[tuple[float, float | None, str | None]] = []

        async def progress(p: float, total: float | None, message: str | None) -> None:
            seen.append((p, total, message))

        async with mcp_session(mcp_url(m, "local"), m.admin) as s:
            added = [text(await s.call_tool("add", {"a": i, "b": i})) for i in range(5)]
            failed = await s.call_tool("add", {"a": "not a number", "b": 1})
            stepped = await s.call_tool("progress", None, progress_callback=progress)
            listed = {t.name for t in (await s.list_tools()).tools}  # (the SDK path)
            assert "sample" in listed
            return [*added, text(stepped)], failed, seen

    before = relayed(m)
    answers, failed, seen = run(flow)
    assert answers == ["0", "2", "4", "6", "8", "done"]
    assert failed.is_error and "validation error" in text(failed).lower()
    assert seen == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
    assert relayed(m) - before == 7  # every call took the fast lane


def test_a_cancelled_call_is_cancelled_in_the_child(mcpd: Mcpd) -> None:
    m = mcpd
    local(m)

    async def count(want: str) -> str:
        async with mcp_session(mcp_url(m, "local"), m.admin) as s:
            deadline = time.monotonic() + 5
            while True:
                got = text(await s.call_tool("cancelled", {}))
                if got == want or time.monotonic() > deadline:
                    return got
                await anyio.sleep(0.05)

    async def cancelled_by_the_caller() -> None:
        async with mcp_session(mcp_url(m, "local"), m.admin) as s:
            with anyio.move_on_after(0.5):  # the SDK client sends notifications/cancelled
                await s.call_tool("sleep", {"seconds": 30})

    before = relayed(m)
    run(cancelled_by_the_caller)
    assert relayed(m) - before == 1
    assert anyio.run(count, "1") == "1"

    async def gone_away() -> None:
        """The caller's connection closes mid-call: the child's request is cancelled."""
        async with httpx.AsyncClient(timeout=10, headers=m.h()) as client:
            h = await raw_session(client, mcp_url(m, "local"))
            call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                    "params": {"name": "sleep", "arguments": {"seconds": 30}}}  # fmt: skip
            with anyio.move_on_after(0.5):
                await client.post(mcp_url(m, "local"), json=call, headers=h)

    run(gone_away)
    assert anyio.run(count, "2") == "2"


async def raw_session(client: httpx.AsyncClient, url: str) -> dict[str, str]:
    init = await client.post(url, json=INIT, headers=ACCEPT)
    h = {
        **ACCEPT,
        "Mcp-Session-Id": init.headers["mcp-session-id"],
        "MCP-Protocol-Version": VERSION,
    }
    await client.post(
        url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=h
    )
    return h


def answer_of(body: str) -> dict[str, Any]:
    datas = [line[5:].strip() for line in body.splitlines() if line.startswith("data:")]
    messages = [json.loads(d) for d in datas if d]
    return next(msg for msg in messages if "result" in msg or "error" in msg)


def test_callers_whose_request_ids_collide(mcpd: Mcpd) -> None:
    """Eight callers at once, every one's request id 1: each gets its own answer."""
    m = mcpd
    local(m)
    url = mcp_url(m, "local")

    async def flow() -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = [{} for _ in range(8)]

        async def one(i: int) -> None:
            async with httpx.AsyncClient(timeout=10, headers=m.h()) as client:
                h = await raw_session(client, url)
                tool, args = ("sleep", {"seconds": 0.3}) if i % 2 else ("echo", {"text": f"c{i}"})
                call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                        "params": {"name": tool, "arguments": args}}  # fmt: skip
                r = await client.post(url, json=call, headers=h)
                assert r.status_code == 200, r.text
                got[i] = answer_of(r.text)

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(one, i)
        return got

    before = relayed(m)
    answers = run(flow)
    assert relayed(m) - before == 8
    for i, answer in enumerate(answers):
        assert answer["id"] == 1
        want = "slept 0.3s" if i % 2 else f"c{i}"
        assert answer["result"]["content"][0]["text"] == want


def httpx_client(bearer: str) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(headers={"Authorization": f"Bearer {bearer}"}, timeout=30)


def test_the_childs_requests_reach_the_caller_whose_call_made_them(mcpd: Mcpd) -> None:
    m = mcpd
    local(m)
    url = mcp_url(m, "local")
    asked: list[str] = []

    async def call(who: str | None, tool: str, args: dict[str, Any]) -> str:
        async def sample(context: Any, params: types.CreateMessageRequestParams) -> Any:
            assert who is not None
            asked.append(who)
            content = types.TextContent(type="text", text=who)
            return types.CreateMessageResult(role="assistant", content=content, model="test")

        async with (
            httpx_client(m.admin) as http,
            streamable_http_client(url, http_client=http) as (read, write),
            ClientSession(read, write, sampling_callback=sample if who else None) as s,
        ):
            await s.initialize()
            return text(await s.call_tool(tool, args))

    async def cancelled_sleep() -> None:
        async with mcp_session(url, m.admin) as s:
            with anyio.move_on_after(0.3):  # cancelled: no longer in flight on the child
                await s.call_tool("sleep", {"seconds": 30})

    before = relayed(m)
    run(cancelled_sleep)
    assert anyio.run(call, "alice", "sample", {"prompt": "hi"}) == "sampled: alice"
    assert asked == ["alice"]
    refused = anyio.run(call, None, "sample", {"prompt": "hi"})
    assert "does not support sampling" in refused
    assert relayed(m) - before == 3

    async def two_at_once() -> tuple[str, str]:
        """bob's call is in flight when alice's asks: ``sample`` is known to ask (alice's
        call above), so hers waits for bob's to end and then runs alone."""
        got: dict[str, str] = {}

        async def bob() -> None:
            got["bob"] = await call("bob", "sleep", {"seconds": 1.0})

        async with anyio.create_task_group() as tg:
            tg.start_soon(bob)
            await anyio.sleep(0.4)
            got["alice"] = await call("alice", "sample", {"prompt": "hi"})
        return got["alice"], got["bob"]

    alice, bob = run(two_at_once)
    assert bob == "slept 1.0s"
    assert alice == "sampled: alice"
    assert asked == ["alice", "alice"]  # bob was never asked alice's question


@dataclass
class Asker:
    """A caller with its own sampling and elicitation handlers, which say who answered and
    remember what they were asked; slow (0.3 s), so that two callers' calls would overlap."""

    who: str
    sampled: list[str] = field(default_factory=list)
    elicited: list[str] = field(default_factory=list)

    async def sample(self, context: Any, params: types.CreateMessageRequestParams) -> Any:
        asked = params.messages[0].content
        self.sampled.append(asked.text if isinstance(asked, types.TextContent) else "?")
        await anyio.sleep(0.3)
        content = types.TextContent(type="text", text=self.who)
        return types.CreateMessageResult(role="assistant", content=content, model="test")

    async def elicit(self, context: Any, params: types.ElicitRequestParams) -> Any:
        self.elicited.append(params.message)
        await anyio.sleep(0.3)
        return types.ElicitResult(action="accept", content={"name": self.who})

    async def call(self, url: str, bearer: str, tool: str, args: dict[str, Any]) -> str:
        async with (
            httpx_client(bearer) as http,
            streamable_http_client(url, http_client=http) as (read, write),
            ClientSession(
                read, write, sampling_callback=self.sample, elicitation_callback=self.elicit
            ) as s,
        ):
            await s.initialize()
            return text(await s.call_tool(tool, args))


def test_two_callers_at_once_each_asked_only_its_own(mcpd: Mcpd) -> None:
    """The child's requests carry nothing that says whose they are (upstream/relay/pipe.py):
    the first one asked while two calls are in flight is refused, to nobody; from then on
    the tools that ask run alone, and two callers at once are each asked only their own."""
    m = mcpd
    local(m)
    url = mcp_url(m, "local")
    alice, bob = Asker("alice"), Asker("bob")

    async def both(a: tuple[str, dict[str, Any]], b: tuple[str, dict[str, Any]]) -> list[str]:
        got: dict[str, str] = {}

        async def one(asker: Asker, tool: str, args: dict[str, Any], delay: float) -> None:
            await anyio.sleep(delay)
            got[asker.who] = await asker.call(url, m.admin, tool, args)

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, bob, *b, 0.0)
            tg.start_soon(one, alice, *a, 0.3)  # (bob's call is surely in flight first)
        return [got["alice"], got["bob"]]

    # nothing known yet: alice's sampling request cannot be told from bob's sleep
    first = run(lambda: both(("sample", {"prompt": "alice"}), ("sleep", {"seconds": 1.0})))
    assert first[0].startswith("no sampling") and "cannot tell which of 2" in first[0]
    assert first[1] == "slept 1.0s"
    assert alice.sampled == [] and bob.sampled == []

    # now known: each is asked its own, once, and answered by its own handler
    for _ in range(2):
        got = run(lambda: both(("sample", {"prompt": "alice"}), ("sample", {"prompt": "bob"})))
        assert got == ["sampled: alice", "sampled: bob"]
    assert alice.sampled == ["alice", "alice"] and bob.sampled == ["bob", "bob"]

    # elicitation: learnt on a call alone, then beside a sampling caller
    assert run(lambda: alice.call(url, m.admin, "elicit", {"question": "alice?"})) == (
        "elicited: accept alice"
    )
    got = run(lambda: both(("elicit", {"question": "alice?"}), ("sample", {"prompt": "bob"})))
    assert got == ["elicited: accept alice", "sampled: bob"]
    assert alice.elicited == ["alice?", "alice?"] and bob.elicited == []
    assert alice.sampled == ["alice", "alice"] and bob.sampled == ["bob"] * 3


def test_a_child_crashing_mid_call(mcpd: Mcpd) -> None:
    m = mcpd
    local(m)

    async def flow() -> tuple[Any, float]:
        async with mcp_session(mcp_url(m, "local"), m.admin) as s:
            began = time.monotonic()
            with anyio.fail_after(10):  # an answer, not a hang
                result = await s.call_tool("crash", {})
            return result, time.monotonic() - began

    before = relayed(m)
    result, took = run(flow)
    assert relayed(m) - before == 1
    assert result.is_error and "`local`" in text(result) and "ended" in text(result)
    assert took < 2.0
    m.wait_instance("local", lambda i: i["status"] == "RUNNING" and i["restarts"] == 1)

    async def again() -> str:
        async with mcp_session(mcp_url(m, "local"), m.admin) as s:
            return text(await s.call_tool("add", {"a": 2, "b": 2}))

    assert run(again) == "4"


def test_relayed_inside_bubblewrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = Sandbox(mode="bwrap")
    if not box.probe():
        pytest.skip(f"bubblewrap cannot run here: {box.description}")
    monkeypatch.chdir(ROOT)
    settings = make_settings(f"sqlite:///{tmp_path / 'm.db'}", tmp_path, stdio_sandbox="bwrap")
    with serve_mcpd(settings) as m:
        local(m)
        assert "bubblewrap" in m.logs("local") or "bwrap" in m.logs("local")

        async def flow() -> str:
            async with mcp_session(mcp_url(m, "local"), m.admin) as s:
                return text(await s.call_tool("echo", {"text": "boxed"}))

        before = relayed(m)
        assert run(flow) == "boxed"
        assert relayed(m) - before == 1


def test_a_right_taken_away_mid_session_is_refused_and_audited(mcpd: Mcpd) -> None:
    """The relayed calls answered ahead of FastAPI's router (McpFastPath) are asked what the
    route asks: once bob may no longer run the server, his next call on the session he
    opened is refused (HTTP 403) and the deny audited, though his credential is cached."""
    m = mcpd
    local(m)
    bob = m.login("bob@example.com", "role:run,resource:servers")

    async def flow() -> tuple[str, str]:
        async with mcp_session(mcp_url(m, "local"), bob) as s:
            first = text(await s.call_tool("echo", {"text": "still mine"}))
            m.ok("DELETE", "/rbac/rb-bob")
            deadline = time.monotonic() + 10
            while True:
                try:
                    await s.call_tool("echo", {"text": "again"})
                except Exception as exc:  # the SDK client's error for the 403
                    return first, str(exc)
                assert time.monotonic() < deadline, "still allowed"
                await anyio.sleep(0.05)

    before = relayed(m)
    first, refused = run(flow)
    assert first == "still mine" and refused
    assert relayed(m) - before >= 1
    denies = m.ok("GET", "/auditevents", params={"kind": "servers", "outcome": "deny"})["items"]
    assert any(e["name"] == "local" and "bob" in str(e) for e in denies)


def test_a_call_made_while_the_child_starts_waits_and_is_relayed(mcpd: Mcpd) -> None:
    # no warm-up: the session's initialize starts the child, and the call that follows comes
    # while it is starting (a Python child takes most of a second): it waits for the child,
    # then takes the fast lane like every later call (only there is the caller asked what
    # the child asks)
    m = mcpd
    m.server("cold", stdio_spec("demo"))
    before = relayed(m)

    async def flow() -> str:
        async with mcp_session(mcp_url(m, "cold"), m.admin) as s:
            return text(await s.call_tool("add", {"a": 1, "b": 2}))

    assert run(flow) == "3"
    assert relayed(m) - before == 1
