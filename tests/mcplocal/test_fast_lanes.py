"""mcplocal's fast lanes (upstream/relay) answer as the SDK path does.

* ``tools/list``: a session is followed for listChanged from its ``initialized``; its
  listings come from the serialized listing cache once that holds the caller's (the first
  caller's first goes the SDK way, which fills it), byte-for-byte the
  SDK's result at the caller's protocol version, and never staler than the listing cache
  itself (a project's new server shows up in them);
* ``tools/call`` on an http upstream is relayed, its audit record written like any other.
"""

from __future__ import annotations

import gc
import json
import re
import time
from typing import Any

import httpx
import mcp_types as types
from mcp_types.methods import serialize_server_result

from mcplocal.proxy import Caller, Proxy
from tests.mcpd.test_instances import stdio_spec
from tests.mcplocal.conftest import Stack
from tests.mcplocal.test_journey import start_http_upstream, token
from tests.servers.launch import free_port


def counter(stack: Stack, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", httpx.get(f"{stack.mcplocal}/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


class RawSession:
    """A Streamable HTTP MCP session spoken by hand, to see the answers as sent."""

    def __init__(self, url: str, bearer: str, version: str) -> None:
        self.url, self.version = url, version
        self.http = httpx.Client(timeout=30)
        self.headers = {
            "Authorization": f"Bearer {bearer}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        }
        init = self.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"}}})  # fmt: skip
        self.headers |= {"mcp-session-id": init.headers["mcp-session-id"],
                         "mcp-protocol-version": version}  # fmt: skip
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        self.next_id = 1

    def post(self, message: dict[str, Any]) -> httpx.Response:
        r = self.http.post(self.url, headers=self.headers, json=message)
        assert r.status_code in (200, 202), r.text
        return r

    def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        r = self.post({**message, **({"params": params} if params is not None else {})})
        if r.headers["content-type"].startswith("text/event-stream"):
            data = [line[5:].strip() for line in r.text.splitlines() if line.startswith("data:")]
            answer = [m for m in map(json.loads, data) if "id" in m]
        else:
            answer = [r.json()]
        assert answer[-1]["id"] == self.next_id
        return answer[-1]

    def close(self) -> None:
        self.http.close()


def test_cached_listings_are_the_sdk_s_own(stack: Stack) -> None:
    m = stack.mcpd
    m.server("one", stdio_spec("demo"))
    m.server("two", stdio_spec("demo"))
    m.ok("POST", "/projects", json={"name": "web", "servers": ["one"]})
    raw = token(stack, "lister", "web", "role:run,resource:servers")
    for version in ("2025-06-18", "2025-11-25"):
        s = RawSession(f"{stack.mcplocal}/mcp", raw, version)
        try:
            before = counter(stack, "mcplocal_cached_lists_total")
            first = s.request("tools/list")  # the SDK's answer (fills the caches)
            again = []
            # (an instance coming up meanwhile moves the listing on: that one is the SDK's)
            while counter(stack, "mcplocal_cached_lists_total") - before < 3:
                assert len(again) < 20
                again.append(s.request("tools/list"))
            assert all(a["result"] == first["result"] for a in again)
            # the fast lanes check Host and Origin as the SDK does, and limit the body alike
            listing = {"jsonrpc": "2.0", "id": 99, "method": "tools/list"}
            for bad, status in (({"Host": "evil.example.com"}, 421),
                                ({"Origin": "http://evil.example.com"}, 403)):  # fmt: skip
                r = s.http.post(s.url, headers={**s.headers, **bad}, json=listing)
                assert r.status_code == status, r.text
            huge = {**listing, "params": {"_meta": {"pad": "x" * (5 * 1024 * 1024)}}}
            assert s.http.post(s.url, headers=s.headers, json=huge).status_code == 413
            assert {t["name"] for t in first["result"]["tools"]} >= {"one__add", "one__echo"}
            # another session of the same caller: followed from its `initialized` on, so its
            # first listing comes from the cache too (nothing changed meanwhile)
            other = RawSession(f"{stack.mcplocal}/mcp", raw, version)
            try:
                before = counter(stack, "mcplocal_cached_lists_total")
                assert other.request("tools/list")["result"] == first["result"]
                assert counter(stack, "mcplocal_cached_lists_total") - before == 1
            finally:
                other.close()
        finally:
            s.close()

    # a change to what the caller may see reaches the cached answers too
    s = RawSession(f"{stack.mcplocal}/mcp", raw, "2025-11-25")
    try:
        s.request("tools/list")
        m.ok("PUT", "/projects/web", json={"servers": ["one", "two"]})
        deadline = time.monotonic() + 15
        while True:
            names = {t["name"] for t in s.request("tools/list")["result"]["tools"]}
            if "two__add" in names:
                break
            assert time.monotonic() < deadline, names
            time.sleep(0.2)
    finally:
        s.close()


def test_a_cached_listing_is_served_only_while_the_sdk_path_would_serve_it() -> None:
    proxy = Proxy("http://127.0.0.1:1", None, None, None, None, listing_ttl=0.3)  # type: ignore[arg-type]
    caller = Caller("McpToken:abc", "web")
    tools = [types.Tool(name="one__add", input_schema={"type": "object"}, description="Add")]
    proxy._listings[("McpToken:abc", "web")] = (proxy._generation, time.monotonic(), tools)
    wire = proxy.listing_json(caller, "2025-11-25", None)
    assert wire is not None
    dumped = types.ListToolsResult(tools=tools).model_dump(
        by_alias=True, mode="json", exclude_none=True
    )
    sdk = serialize_server_result("tools/list", "2025-11-25", dumped)
    assert json.loads(wire) == sdk
    assert proxy.listing_json(caller, "2026-07-28", None) is None  # the modern era: the SDK's
    assert proxy.listing_json(caller, None, None) is None
    assert proxy.listing_json(Caller("McpToken:other", "web"), "2025-11-25", None) is None

    class Conn:  # a connection, as far as the proxy's weak references go
        pass

    assert proxy.listing_json(caller, "2025-11-25", "sid-1") is None  # not followed yet
    conn = Conn()
    proxy.remember(conn, caller, "sid-1")  # type: ignore[arg-type]
    assert proxy.listing_json(caller, "2025-11-25", "sid-1") == wire
    del conn
    gc.collect()
    assert proxy.listing_json(caller, "2025-11-25", "sid-1") is None  # the session is gone

    proxy.tools_changed("web")  # anything that may change what the caller sees
    assert proxy.listing_json(caller, "2025-11-25", None) is None
    proxy._listings[("McpToken:abc", "web")] = (proxy._generation, time.monotonic(), tools)
    assert proxy.listing_json(caller, "2025-11-25", None) == wire
    time.sleep(0.35)  # older than the listing cache keeps it
    assert proxy.listing_json(caller, "2025-11-25", None) is None


def test_relayed_calls_are_audited(stack: Stack) -> None:
    m = stack.mcpd
    port = free_port()
    up = start_http_upstream(port)
    try:
        m.server("alpha", {"transport": "http", "http": {"url": f"http://127.0.0.1:{port}/mcp"}})
        m.ok("POST", "/projects", json={"name": "p", "servers": ["alpha"]})
        raw = token(stack, "caller", "p", "role:run,resource:servers")
        s = RawSession(f"{stack.mcplocal}/mcp", raw, "2025-11-25")
        try:
            s.request("tools/list")
            deadline = time.monotonic() + 15
            before = counter(stack, "mcplocal_relayed_calls_total")
            while True:  # until alpha's instance in mcplocal (and mcpd) is RUNNING
                answer = s.request(
                    "tools/call", {"name": "alpha__add", "arguments": {"a": 1, "b": 2}}
                )
                if counter(stack, "mcplocal_relayed_calls_total") > before:
                    break
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert answer["result"]["content"][0]["text"] == "3"
            failed = s.request("tools/call", {"name": "alpha__fail", "arguments": {}})
            assert failed["result"]["isError"] is True
        finally:
            s.close()
        deadline = time.monotonic() + 10
        while True:
            calls = m.ok("GET", "/auditevents", params={"action": "call"})["items"]
            mine = [e for e in calls if e["tokenName"] == "caller"]
            if any(e["name"] == "alpha__fail" for e in mine) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        fail = [e for e in mine if e["name"] == "alpha__fail"]
        assert fail and fail[-1]["outcome"] == "error" and fail[-1]["detail"]["durationMs"] >= 0
        assert any(e["name"] == "alpha__add" and e["outcome"] == "allow" for e in mine)
    finally:
        up.kill()
        up.wait()
