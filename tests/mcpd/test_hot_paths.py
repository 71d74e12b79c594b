"""The request path made faster for bench/mcpd.py keeps its behaviour, on SQLite and PostgreSQL.

* login sessions are remembered for a second, and forgotten at once on logout and on any
  change to users;
* GET /servers reads plain rows and serializes them itself: the same page as before; the
  page is kept until the servers table changes (mcpd.changes), and every kind of change -
  create, update, delete, restore, a failed write, another replica's write - is seen;
* concurrent requests with one bearer share one database lookup;
* the request id middleware is pure ASGI: same header, same id in the audit log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select

from authz.tokens import generate_oauth_token, generate_session_token, token_sha256
from mcpd.api import deps
from mcpd.api.deps import _caller, cached_caller
from mcpd.bootstrap import bootstrap_admin
from mcpd.changes import Generations, ReadCache
from mcpd.db import make_engine, migrate
from mcpd.models import LoginSession, Project, Server, User
from mcpd.principal import Principal
from mcpd.runtime import Runtime, SessionCache, build_runtime
from mcpd.services.oauth import resource_of_request
from mcpd.settings import Settings
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


def _names(api: Api, query: str = "") -> list[str]:
    return [s["name"] for s in api.ok("GET", f"/servers{query}")["items"]]


def test_the_kept_server_list_follows_every_change(api: Api) -> None:
    spec = {"transport": "stdio", "stdio": {"command": "srv"}}
    assert _names(api) == []
    api.ok("POST", "/servers", json={"name": "one", **spec})
    assert _names(api) == ["one"]
    assert _names(api) == ["one"]  # served again, unchanged
    assert _names(api, "?limit=1") == ["one"]  # another page is another entry
    api.ok("POST", "/servers", json={"name": "two", **spec})
    assert _names(api) == ["one", "two"]
    assert _names(api, "?limit=1") == ["one"]
    api.ok("PUT", "/servers/one", json={"description": "changed"})
    assert api.ok("GET", "/servers")["items"][0]["description"] == "changed"
    # a refused write changes nothing, and the page stays right
    assert api.call("POST", "/servers", json={"name": "one", **spec}).status_code == 409
    assert _names(api) == ["one", "two"]
    api.ok("DELETE", "/servers/two")
    assert _names(api) == ["one"]
    backup = api.call("GET", "/backup")
    assert backup.status_code == 200
    api.ok("DELETE", "/servers/one")
    assert _names(api) == []
    r = api.call("POST", "/restore", content=backup.text)
    assert r.status_code == 200, r.text
    assert _names(api) == ["one"]


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
        yield build_runtime(settings, engine)
    finally:
        engine.dispose()


def test_generations_move_after_a_commit_only(runtime: Runtime) -> None:
    gens = runtime.generations
    heard: list[frozenset[str]] = []
    gens.follow(heard.append)
    before = gens.of("servers")
    with runtime.sessions() as s:
        s.add(Server(name="x", transport="stdio", spec={"command": "c"}, created_by="t"))
        s.flush()
        assert gens.of("servers") == before  # not committed yet
        s.rollback()
    assert gens.of("servers") == before and heard == []
    with runtime.sessions() as s:
        s.add(Server(name="x", transport="stdio", spec={"command": "c"}, created_by="t"))
        s.add(Project(name="p", created_by="t"))
        s.commit()
    after = gens.of("servers")
    assert after != before
    assert heard == [frozenset({"servers", "projects"})]
    with runtime.sessions() as s:  # a bulk statement, no ORM objects
        s.execute(delete(Server).where(Server.name == "x"))
        s.commit()
    assert gens.of("servers") != after
    assert heard[-1] == frozenset({"servers"})
    with runtime.sessions() as s:  # reading moves nothing
        s.scalars(select(Server)).all()
        s.commit()
    assert len(heard) == 2


def test_the_read_cache_serves_only_the_current_generation() -> None:
    gens = Generations()
    cache = ReadCache(gens, max_entries=2)
    gen, value = cache.get("servers", "page")
    assert value is None
    cache.put("servers", "page", gen, b"v1")
    assert cache.get("servers", "page") == (gen, b"v1")
    gens.bump(["projects"])  # another table
    assert cache.get("servers", "page")[1] == b"v1"
    stale_gen = cache.get("servers", "page")[0]
    gens.bump(["servers"], local=False)  # e.g. another replica's write
    assert cache.get("servers", "page")[1] is None
    cache.put("servers", "page", stale_gen, b"computed before the change")
    assert cache.get("servers", "page")[1] is None
    gen = cache.get("servers", "page")[0]
    cache.put("servers", "page", gen, b"v2")
    gens.bump_all()
    assert cache.get("servers", "page")[1] is None
    # while other writers cannot be heard, nothing is served or kept
    gens.set_coherent(False)
    gen, value = cache.get("servers", "page")
    assert gen is None and value is None
    cache.put("servers", "page", gen, b"v3")
    gens.set_coherent(True)
    gen, value = cache.get("servers", "page")
    assert value is None
    for key in ("a", "b", "c"):  # full: it starts again rather than grow
        cache.put("servers", key, gen, key)
    assert cache.get("servers", "c")[1] == "c"
    assert cache.get("servers", "a")[1] is None


def test_concurrent_requests_with_one_bearer_share_one_lookup(
    runtime: Runtime, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with runtime.sessions() as s:
        bootstrap_admin(s, runtime.authorizer, "ann", "a long enough password")
        user = s.scalars(select(User).where(User.name == "ann")).one()
        raw = generate_session_token()
        expires = datetime.now(UTC) + timedelta(hours=1)
        s.add(LoginSession(token_sha=token_sha256(raw), user_id=user.id, expires_at=expires))
        s.commit()
    lookups: list[str] = []
    real = deps.authenticate

    def counting(session: object, token: str, cache: object = None) -> object:
        lookups.append(token)
        time.sleep(0.05)  # long enough for every request to arrive meanwhile
        return real(session, token, cache)  # type: ignore[arg-type]

    monkeypatch.setattr(deps, "authenticate", counting)

    async def many() -> list[str]:
        found = await asyncio.gather(*(_caller(runtime, raw) for _ in range(20)))
        return [p.subject for p in found]

    assert asyncio.run(many()) == ["User:ann"] * 20
    assert len(lookups) == 1
    assert runtime.lookups == {}


def test_the_fast_path_holds_an_oauth_token_to_its_resource(api: Api) -> None:
    """McpFastPath answers from the credential cache, ahead of the guard: a cached OAuth
    principal must still be at the resource its token was issued for (RFC 8707), or the
    request goes on to the guard, which refuses it."""
    rt = api.client.app.state.runtime  # type: ignore[attr-defined]
    path = "/api/v1/servers/alpha/mcp"
    raw = generate_oauth_token("oauth")
    for resource, seen in [
        ("http://127.0.0.1:8430/mcp", False),  # issued for mcplocal
        (resource_of_request(rt.settings, "/api/v1/servers/beta/mcp"), False),
        (resource_of_request(rt.settings, path), True),
    ]:
        principal = Principal("McpToken:" + "0" * 64, token_sha="0" * 64, resource=resource)
        rt.session_cache.put(token_sha256(raw), principal, 30.0, rt.session_cache.generation())
        assert (cached_caller(rt, f"Bearer {raw}", path) is principal) is seen, resource
