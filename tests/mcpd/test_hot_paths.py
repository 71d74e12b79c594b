"""The request path made faster for bench/mcpd.py keeps its behaviour, on SQLite and PostgreSQL.

* login sessions are remembered for a second, and forgotten at once on logout and on any
  change to users;
* GET /servers reads plain rows and serializes them itself: the same page as before;
* the request id middleware is pure ASGI: same header, same id in the audit log.
"""

from __future__ import annotations

import time

from mcpd.runtime import SessionCache
from tests.mcpd.conftest import Api


def test_session_cache_forgets_after_its_ttl_or_the_session_s_end() -> None:
    cache = SessionCache(ttl=0.2, max_entries=3)
    cache.put("a", "alice", valid_for=60)
    cache.put("b", "bob", valid_for=0.05)  # the session itself ends sooner
    assert cache.get("a") == "alice"
    time.sleep(0.1)
    assert cache.get("b") is None
    assert cache.get("a") == "alice"
    time.sleep(0.15)
    assert cache.get("a") is None
    for key in "cdef":  # full: it starts again rather than grow
        cache.put(key, key, valid_for=60)
    assert cache.get("f") == "f"
    assert cache.get("c") is None


def test_logout_ends_a_remembered_session_at_once(api: Api) -> None:
    bearer = api.login("root@example.com")
    for _ in range(3):
        assert api.call("GET", "/auth/me", bearer).status_code == 200
    assert api.call("POST", "/auth/logout", bearer).status_code == 204
    assert api.call("GET", "/auth/me", bearer).status_code == 401
    assert api.call("GET", "/servers", bearer).status_code == 401


def test_disabling_or_deleting_a_user_ends_its_remembered_sessions_at_once(api: Api) -> None:
    alice = api.user("alice", "role:view,resource:servers")
    bob = api.user("bob", "role:view,resource:servers")
    assert api.call("GET", "/servers", alice).status_code == 200
    assert api.call("GET", "/servers", bob).status_code == 200
    api.ok("PUT", "/users/alice", json={"disabled": True})
    assert api.call("GET", "/servers", alice).status_code == 401
    api.ok("DELETE", "/users/bob")
    assert api.call("GET", "/servers", bob).status_code == 401
    assert api.call("GET", "/servers").status_code == 200  # the admin's session is unaffected


def test_the_server_list_is_the_servers_one_by_one_with_paging(api: Api) -> None:
    api.ok("POST", "/secrets", json={"name": "gh", "data": {"token": "x"}})
    specs = [
        {"name": "a-stdio", "transport": "stdio", "stdio": {"command": "srv", "args": ["-v"]}},
        {
            "name": "b-http",
            "description": "remote",
            "transport": "http",
            "http": {
                "url": "https://example.com/mcp",
                "headers": {"Authorization": {"secretRef": "gh/token"}},
            },
            "healthCheck": {"tool": "ping", "intervalSeconds": 5},
        },
        {"name": "c-env", "transport": "stdio", "stdio": {"command": "x", "env": {"A": "1"}}},
    ]
    for spec in specs:
        api.ok("POST", "/servers", json=spec)
    api.ok("PUT", "/servers/a-stdio", json={"description": "changed", "version": 1})
    listed = api.ok("GET", "/servers")
    assert listed["next"] is None
    assert listed["items"] == [api.ok("GET", f"/servers/{s['name']}") for s in specs]
    first = api.ok("GET", "/servers?limit=2")
    assert [s["name"] for s in first["items"]] == ["a-stdio", "b-http"]
    assert first["next"] == "b-http"
    rest = api.ok("GET", f"/servers?limit=2&after={first['next']}")
    assert [s["name"] for s in rest["items"]] == ["c-env"]
    assert rest["next"] is None


def test_request_ids_are_echoed_generated_and_audited(api: Api) -> None:
    r = api.call("POST", "/projects", json={"name": "p1"})
    generated = r.headers["x-request-id"]
    assert len(generated) == 32
    r = api.client.post(
        "/api/v1/projects",
        json={"name": "p2"},
        headers={**api.h(), "X-Request-Id": "trace-" + "x" * 100},
    )
    assert r.status_code == 201
    assert r.headers["x-request-id"] == ("trace-" + "x" * 100)[:64]
    events = api.ok("GET", "/auditevents?kind=projects&action=create")["items"]
    assert {e["name"]: e["requestId"] for e in events} == {
        "p1": generated,
        "p2": ("trace-" + "x" * 100)[:64],
    }
    assert api.client.get("/healthz").headers["x-request-id"]
