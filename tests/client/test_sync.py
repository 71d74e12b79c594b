"""The sync face: its streaming, without mcpd (errors, and the end of a stream)."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from client import Denied, McpdClient, NotFound, Unreachable


def _client(handler: Any) -> McpdClient:
    return McpdClient("http://mcpd.test", "t", transport=httpx2.MockTransport(handler))


def test_server_logs_client_maps_errors_and_ends_with_the_stream() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        name = request.url.path.split("/")[-2]
        if name == "secret":
            return httpx2.Response(
                403,
                json={"detail": "bob may not logs servers/secret: no policy line allows it"},
                headers={"content-type": "application/problem+json"},
            )
        if name == "gone":
            return httpx2.Response(404, json={"detail": "server `gone` not found"})
        return httpx2.Response(200, text="a\nb\n\nc\n")

    with _client(handler) as c:
        assert list(c.server_logs("demo", 5, follow=True)) == ["a", "b", "", "c"]
        assert dict(seen[-1].url.params) == {"tail": "5", "follow": "true"}
        assert seen[-1].headers["authorization"] == "Bearer t"
        with pytest.raises(Denied, match="no policy line allows it"):
            next(c.server_logs("secret"))
        assert dict(seen[-1].url.params) == {"tail": "100", "follow": "false"}
        with pytest.raises(NotFound, match="not found"):
            list(c.server_logs("gone"))

    def down(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused")

    with _client(down) as c, pytest.raises(Unreachable, match="cannot reach mcpd"):
        list(c.server_logs("demo"))


def test_a_call_with_its_own_bearer_is_sent_with_that_one() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={"active": True})

    with _client(handler) as c:
        assert c.introspect("raw") == {"active": True}
        assert c.request("GET", "/auth/me") == {"active": True}
    assert [r.headers["authorization"] for r in seen] == ["Bearer raw", "Bearer t"]
    assert seen[0].url.path == "/api/v1/mcptokens/introspect"
