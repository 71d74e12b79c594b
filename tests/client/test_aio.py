"""The async face: its errors, streams and lifecycle without mcpd (a mock transport), then
mcplocal's calls (projects, the policy stream, audit reports) against a real mcpd."""

from __future__ import annotations

import json
import uuid
from typing import Any

import anyio
import httpx2
import pytest

from client import (
    AUDIT_EVENTS,
    MY_CALLS,
    MY_POLICY,
    AsyncMcpdClient,
    Denied,
    McpdClient,
    NotAuthenticated,
    NotFound,
    Unreachable,
)
from client.errors import transport_error
from tests.client.conftest import ADMIN, PASSWORD

Handler = Any


def mock(handler: Handler, auth: str | None = "t") -> AsyncMcpdClient:
    return AsyncMcpdClient("http://mcpd.test/", auth, transport=httpx2.MockTransport(handler))


def down(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.ConnectError("connection refused")


# -- without mcpd ----------------------------------------------------------------------------


def test_errors_by_status_and_unreachable_with_the_transport_error_as_cause() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.headers["authorization"] == "Bearer t"
        return httpx2.Response(404, json={"detail": "project `p` not found"})

    async def main() -> None:
        async with mock(handler) as c:
            with pytest.raises(NotFound, match="project `p` not found") as err:
                await c.project("p")
            assert err.value.body == {"detail": "project `p` not found"}
            assert json.loads(err.value.text) == err.value.body
        async with mock(down) as c:
            with pytest.raises(Unreachable, match=r"cannot reach mcpd at http://mcpd\.test: ") as u:
                await c.me()
            assert isinstance(transport_error(u.value), httpx2.ConnectError)

    anyio.run(main)


def test_watch_yields_each_json_line_and_refuses_anything_but_200() -> None:
    lines = b'{"snapshot": {}}\n\n{"heartbeat": true}\n{"reload": true}\n'

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/api/v1/auth/me/policy":
            return httpx2.Response(200, content=lines)
        return httpx2.Response(401, json={"detail": "invalid or expired credentials"})

    async def main() -> list[Any]:
        async with mock(handler) as c:
            with pytest.raises(NotAuthenticated, match="invalid or expired") as err:
                async with c.watch():
                    pass
            assert err.value.status == 401
            async with c.watch(MY_POLICY) as messages:
                got = [m async for m in messages]
        async with mock(down) as c:
            with pytest.raises(Unreachable, match="cannot reach mcpd"):
                async with c.watch():
                    pass
        return got

    assert anyio.run(main) == [{"snapshot": {}}, {"heartbeat": True}, {"reload": True}]


def test_a_borrowed_client_stays_open_and_gets_no_credential_of_ours() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(202, json={"recorded": 1})

    async def main() -> None:
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
            async with AsyncMcpdClient("http://mcpd.test", "t", http=http) as c:
                await c.send_audit([{"tool": "x"}], path=MY_CALLS)
                await c.send_audit([], headers={"Authorization": "Bearer other"})
                url, headers = c.upstream_url("a b", "p/q"), await c.fresh_headers()
            assert not http.is_closed
            await http.get("http://llm.test/v1/models")
        assert url == "http://mcpd.test/api/v1/servers/a%20b/mcp?project=p/q"
        assert headers == {"Authorization": "Bearer t"}

    anyio.run(main)
    mine, other, llm = seen
    assert (mine.url.path, json.loads(mine.content)) == (
        "/api/v1/auth/me/calls",
        {"events": [{"tool": "x"}]},
    )
    assert mine.headers["authorization"] == "Bearer t"
    assert other.url.path == "/api/v1" + AUDIT_EVENTS
    assert other.headers["authorization"] == "Bearer other"
    assert "authorization" not in llm.headers


def test_an_owned_client_is_closed_with_it() -> None:
    async def main() -> httpx2.AsyncClient:
        async with mock(down) as c:
            return c.http

    assert anyio.run(main).is_closed


# -- against mcpd ------------------------------------------------------------------------------


def test_mcplocals_calls_against_mcpd(mcpd_url: str) -> None:
    name = f"proj-{uuid.uuid4().hex[:8]}"
    with McpdClient(mcpd_url) as anonymous:
        token = str(anonymous.login(ADMIN, PASSWORD)["token"])
    with McpdClient(mcpd_url, token) as c:
        c.create("project", {"name": name, "servers": []})
    event = {"user": ADMIN, "server": "s", "tool": "t", "project": name, "outcome": "allow"}

    async def main() -> None:
        async with AsyncMcpdClient(mcpd_url, token) as c:
            assert (await c.me())["user"] == ADMIN
            project = await c.project(name)
            assert await c.project(name, headers={"Authorization": f"Bearer {token}"}) == project
            assert (project["name"], project["servers"]) == (name, [])
            with pytest.raises(NotFound):
                await c.project(name + "-gone")
            async with c.watch(MY_POLICY) as messages:
                first = await anext(messages)
            assert "snapshot" in first
            await c.send_audit([{**event, "durationMs": 1.5}], path=MY_CALLS)
            with pytest.raises(Denied, match="may report only its own calls"):
                await c.send_audit(
                    [{**event, "user": "x@example.com", "durationMs": 1}], path=MY_CALLS
                )
        async with AsyncMcpdClient(mcpd_url) as anonymous:
            with pytest.raises(NotAuthenticated):
                async with anonymous.watch(MY_POLICY):
                    pass

    anyio.run(main)
