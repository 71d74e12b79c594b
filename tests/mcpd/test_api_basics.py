"""Authentication, problem+json errors, CRUD, versions and pagination - on SQLite and PostgreSQL."""

from __future__ import annotations

from fastapi.testclient import TestClient

from mcpd.api.route_table import ROUTES
from tests.mcpd.conftest import ADMIN, Api


def test_every_route_is_in_the_route_table(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    served = {(m.upper(), p) for p, ops in paths.items() if p.startswith("/api/v1") for m in ops}
    assert served == set(ROUTES)


def test_no_credentials_is_401_problem_json(api: Api) -> None:
    r = api.client.get("/api/v1/servers")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in r.json()["detail"]
    for bad in (
        "Bearer nonsense",
        "Basic abc",
        "Bearer mcpctl_pat_" + "A" * 43,
        "Bearer mcpctl_ses_" + "A" * 43,
    ):
        r = api.client.get("/api/v1/servers", headers={"Authorization": bad})
        assert r.status_code == 401, bad
        assert r.json()["detail"] in (
            "invalid or expired credentials",
            "credentials must be `Authorization: Bearer <token>`",
        )


def test_token_in_query_string_is_ignored(api: Api) -> None:
    r = api.client.get(f"/api/v1/servers?access_token={api.admin}")
    assert r.status_code == 401


def test_login_logout_me(api: Api) -> None:
    me = api.ok("GET", "/auth/me")
    assert me == {
        "subject": f"User:{ADMIN}",
        "user": ADMIN,
        "tokenName": None,
        "project": None,
        "serviceAccount": None,
    }
    bearer = api.login(ADMIN)
    assert api.call("POST", "/auth/logout", bearer).status_code == 204
    assert api.call("GET", "/auth/me", bearer).status_code == 401
    assert api.call("GET", "/auth/me").status_code == 200  # other sessions unaffected


def test_bad_password_is_401_and_audited_then_rate_limited(api: Api) -> None:
    for _ in range(10):
        r = api.client.post("/api/v1/auth/login", json={"username": ADMIN, "password": "nope"})
        assert r.status_code == 401
    r = api.client.post("/api/v1/auth/login", json={"username": ADMIN, "password": "nope"})
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    events = api.ok("GET", "/auditevents?action=login&outcome=deny")["items"]
    assert len(events) == 10


def test_validation_errors_are_422_with_field_names(api: Api) -> None:
    r = api.call("POST", "/servers", json={"name": "Bad_Name", "transport": "stdio"})
    assert r.status_code == 422
    body = r.json()
    assert body["title"] == "Unprocessable Content"
    assert "name" in body["detail"]
    r = api.call("POST", "/servers", json={"name": "ok", "transport": "stdio"})
    assert r.status_code == 422
    assert "a stdio server needs `stdio`" in r.json()["detail"]
    r = api.call("POST", "/users", json={"name": "x", "password": "short"})
    assert r.status_code == 422


def test_crud_with_versions_and_conflicts(api: Api) -> None:
    spec = {"name": "time", "transport": "stdio", "stdio": {"command": "mcp-server-time"}}
    s = api.ok("POST", "/servers", json=spec)
    assert s["version"] == 1
    assert s["createdBy"] == ADMIN
    assert api.call("POST", "/servers", json=spec).status_code == 409
    s2 = api.ok("PUT", "/servers/time", json={"description": "clock", "version": 1})
    assert s2["version"] == 2
    assert s2["description"] == "clock"
    stale = api.call("PUT", "/servers/time", json={"description": "x", "version": 1})
    assert stale.status_code == 409
    assert "version 1" in stale.json()["detail"]
    assert api.ok("GET", "/servers/time")["description"] == "clock"
    assert api.call("DELETE", "/servers/time").status_code == 204
    assert api.call("GET", "/servers/time").status_code == 404


def test_pagination(api: Api) -> None:
    for i in range(7):
        api.ok("POST", "/projects", json={"name": f"p{i}"})
    first = api.ok("GET", "/projects?limit=3")
    assert [p["name"] for p in first["items"]] == ["p0", "p1", "p2"]
    second = api.ok("GET", f"/projects?limit=3&after={first['next']}")
    assert [p["name"] for p in second["items"]] == ["p3", "p4", "p5"]
    last = api.ok("GET", f"/projects?limit=3&after={second['next']}")
    assert [p["name"] for p in last["items"]] == ["p6"]
    assert last["next"] is None


def test_secrets_are_write_only_and_encrypted_at_rest(api: Api) -> None:
    api.ok("POST", "/secrets", json={"name": "gh", "data": {"token": "s3cr3t-value"}})
    got = api.ok("GET", "/secrets/gh")
    assert got["data"] == {"token": "***"}
    assert "s3cr3t-value" not in api.call("GET", "/secrets").text
    rt = api.client.app.state.runtime  # type: ignore[attr-defined]
    with rt.engine.connect() as conn:
        from sqlalchemy import text

        stored = conn.execute(text("SELECT ciphertext FROM secrets")).scalar()
    assert "s3cr3t-value" not in stored
    assert rt.secret_box.open(stored) == {"token": "s3cr3t-value"}
    api.ok(
        "POST",
        "/servers",
        json={
            "name": "gh",
            "transport": "http",
            "http": {
                "url": "http://127.0.0.1:1/mcp",
                "headers": {"Authorization": {"secretRef": "gh/token"}},
            },
        },
    )
    assert api.call("DELETE", "/secrets/gh").status_code == 409
    bad = api.call(
        "POST",
        "/servers",
        json={
            "name": "gh2",
            "transport": "http",
            "http": {
                "url": "http://127.0.0.1:1/mcp",
                "headers": {"X-Key": {"secretRef": "gh/nokey"}},
            },
        },
    )
    assert bad.status_code == 422
    assert "secret `gh` has no key `nokey`" in bad.json()["detail"]


def test_projects_list_their_servers(api: Api) -> None:
    api.ok(
        "POST",
        "/servers",
        json={"name": "a", "transport": "http", "http": {"url": "http://127.0.0.1:9/mcp"}},
    )
    api.ok("POST", "/projects", json={"name": "web", "servers": ["a"]})
    assert [s["name"] for s in api.ok("GET", "/projects/web/servers")["items"]] == ["a"]
    r = api.call("POST", "/projects", json={"name": "x", "servers": ["nope"]})
    assert r.status_code == 422
    assert "unknown server(s) `nope`" in r.json()["detail"]


def test_health_endpoints(api: Api) -> None:
    client: TestClient = api.client
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["database"] == "ok"


def test_every_route_but_the_public_ones_needs_credentials(api: Api) -> None:
    from mcpd.api.route_table import PUBLIC

    for (method, path), entry in ROUTES.items():
        url = path.replace("{name}", "x").replace("{project}", "x")
        r = api.client.request(method, url, json={})
        if entry == PUBLIC:
            assert r.status_code != 401 or "introspect" in path, (method, path)
        else:
            assert r.status_code == 401, (method, path, r.status_code)


def test_project_proxy_options(api: Api) -> None:
    r = api.call("POST", "/projects", json={"name": "p1", "proxyModel": "summarize"})
    assert r.status_code == 422 and "summarizeUrl" in r.text
    r = api.call("POST", "/projects", json={"name": "p1", "proxyOptions": {"pageSize": 5}})
    assert r.status_code == 422  # unknown option names are refused, not ignored
    options = {"summarizeUrl": "http://127.0.0.1:8000/v1", "pageChars": 1000}
    created = api.ok(
        "POST", "/projects", json={"name": "p1", "proxyModel": "summarize", "proxyOptions": options}
    )
    assert created["proxyOptions"] == options
    r = api.call("PUT", "/projects/p1", json={"proxyOptions": {}})
    assert r.status_code == 422  # summarize without its endpoint
    assert api.ok("GET", "/projects/p1")["proxyOptions"] == options  # nothing lost
    updated = api.ok("PUT", "/projects/p1", json={"proxyModel": "paginate", "proxyOptions": {}})
    assert updated["proxyModel"] == "paginate" and updated["proxyOptions"] == {}
