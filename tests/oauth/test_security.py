"""mcpd's OAuth server refuses what the RFCs say it must: the cases of security.yaml, each
against a real mcpd over loopback HTTP (SQLite and PostgreSQL), plus registration bounds."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from mcpd.ratelimit import RateLimiter
from mcpd.services.oauth_clients import sweep_clients
from tests.mcpd.test_instances import PASSWORD, ROOT, Mcpd, make_settings, serve_mcpd, stdio_spec
from tests.oauth.conftest import DEV
from tests.oauth.flow import Flow, query_of
from tests.servers.launch import free_port

CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "security.yaml").read_text())[
    "cases"
]
OTHER_RESOURCE = "http://127.0.0.1:1/mcp"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def mcpd_oauth(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Mcpd]:
    tmp = tmp_path_factory.mktemp("oauth")
    port = free_port()
    url = f"sqlite:///{tmp / 'mcpd.db'}"
    if request.param == "postgresql":  # a schema of the session's PostgreSQL database
        pg = request.getfixturevalue("pg_url")
        schema = f"t_{uuid.uuid4().hex[:12]}"
        setup = sa.create_engine(pg, isolation_level="AUTOCOMMIT")
        with setup.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        setup.dispose()
        url = f"{pg}?options=-csearch_path%3D{schema}"
    settings = make_settings(
        url,
        tmp,
        public_url=f"http://127.0.0.1:{port}",
        oauth_resources=OTHER_RESOURCE,
        oauth_registrations_per_minute=1000,
    )
    mp = pytest.MonkeyPatch()
    mp.chdir(ROOT)
    try:
        with serve_mcpd(settings, port) as m:
            m.server("demo", stdio_spec("demo"))
            m.server("other", stdio_spec("demo"))
            m.ok("POST", "/projects", json={"name": "web", "servers": ["demo", "other"]})
            m.ok("POST", "/projects", json={"name": "ops", "servers": ["other"]})
            m.login(
                DEV,
                "role:run,resource:servers,name:demo,project:web",
                "action:oauth-consent,project:web",
            )
            yield m
    finally:
        mp.undo()


def use(m: Mcpd, path: str, access: str) -> int:
    headers = {"Authorization": f"Bearer {access}", **MCP_HEADERS}
    if path.endswith("/mcp"):
        r = httpx.post(f"{m.base}{path}?project=web", headers=headers, json=INIT, timeout=30)
    else:
        r = httpx.get(f"{m.base}{path}", headers=headers, timeout=30)
    return r.status_code


def deny_count(m: Mcpd, action: str) -> int:
    page = m.ok("GET", "/auditevents", params={"subject": DEV, "outcome": "deny", "action": action})
    return len(page["items"])


def check_answer(r: httpx.Response, expect: dict[str, Any], m: Mcpd | None = None) -> None:
    assert r.status_code == expect["status"], r.text
    if "error" in expect:
        assert r.json()["error"] == expect["error"], r.text
    if m is not None and r.status_code >= 400:  # a refused token request is audited
        page = m.ok("GET", "/auditevents", params={"action": "token", "outcome": "deny"})
        assert any(e["detail"].get("error") == expect["error"] for e in page["items"][:5])


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_security_case(mcpd_oauth: Mcpd, case: dict[str, Any]) -> None:
    f = Flow(mcpd_oauth.base, case.get("resource", f"{mcpd_oauth.base}/api/v1/servers/demo/mcp"))
    try:
        run_case(mcpd_oauth, f, case)
    finally:
        f.close()


def run_case(m: Mcpd, f: Flow, case: dict[str, Any]) -> None:
    expect = case["expect"]
    if "register" in case:
        check_answer(f.register(**case["register"]), expect)
        return
    assert f.register().status_code == 201
    page_or_redirect = "page" in expect and "consent" not in case
    if page_or_redirect or ("redirect_error" in expect and "consent" not in case):
        r = f.authorize(**case.get("authorize", {}))
        if "page" in expect:  # shown, never sent anywhere
            assert r.status_code == 400 and "location" not in r.headers, r.text
            assert expect["page"] in r.text
            return
        assert r.status_code == 302, r.text
        location = r.headers["location"]
        assert location.startswith(f.redirect_uri + "?")
        q = query_of(location)
        assert q["error"] == expect["redirect_error"] and q["state"] == f.state, q
        return

    denies = deny_count(m, expect["audit_deny"]) if "audit_deny" in expect else 0
    html = f.consent_page(DEV, PASSWORD, "web", **case.get("authorize", {}))
    form = dict(case.get("consent", {}))
    bindings, origin = form.pop("bindings", None), form.pop("origin", None)
    if origin:
        f.http.headers["Origin"] = origin
    r = f.consent(html, bindings, **form)
    f.http.headers.pop("Origin", None)
    if "page" in expect:  # refused on the page: no code, no redirect
        assert r.status_code == expect["status"] and "location" not in r.headers, r.text
        assert expect["page"] in r.text
        if "audit_deny" in expect:
            assert deny_count(m, expect["audit_deny"]) == denies + 1
        return
    assert r.status_code == 303, r.text
    q = query_of(r.headers["location"])
    assert q["state"] == f.state and q["iss"] == m.base
    if "redirect_error" in expect:
        assert q["error"] == expect["redirect_error"]
        return
    code = q["code"]

    exchange = case.get("exchange", {})
    if case.get("exchange_twice"):
        first = f.exchange(code)
        assert first.status_code == 200, first.text
        assert use(m, "/api/v1/servers/demo/mcp", first.json()["access_token"]) == 200
        r = f.exchange(code)
        check_answer(r, expect, m)
        assert use(m, "/api/v1/servers/demo/mcp", first.json()["access_token"]) == 401
        return
    r = f.exchange(code, **exchange)
    if r.status_code != 200 or (
        "use" not in case and not (case.get("refresh_reuse") or case.get("revoke"))
    ):
        check_answer(r, expect)
        return
    tokens = r.json()
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"].startswith("mcpctl_ort_")
    access = tokens["access_token"]
    if "use" in case:
        assert use(m, case["use"], access) == expect["status"]
        return
    if case.get("revoke"):
        gone = f.http.post(
            f"{m.base}/oauth/revoke",
            data={"token": tokens["refresh_token"], "client_id": f.client_id},
        )
        assert gone.status_code == 200
        assert use(m, "/api/v1/servers/demo/mcp", access) == expect["status"]
        return
    rotated = f.refresh(tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert use(m, "/api/v1/servers/demo/mcp", new["access_token"]) == 200
    check_answer(f.refresh(tokens["refresh_token"]), expect, m)  # the rotated one, again
    # the whole family is gone: the old and new access tokens, and the new refresh token
    assert use(m, "/api/v1/servers/demo/mcp", access) == 401
    assert use(m, "/api/v1/servers/demo/mcp", new["access_token"]) == 401
    assert f.refresh(new["refresh_token"]).json()["error"] == "invalid_grant"


def test_metadata_and_challenge_shapes(mcpd_oauth: Mcpd) -> None:
    from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

    meta = httpx.get(f"{mcpd_oauth.base}/.well-known/oauth-authorization-server").json()
    AuthorizationServerMetadata(meta).validate()  # RFC 8414, checked by authlib
    assert meta["issuer"] == mcpd_oauth.base
    assert meta["code_challenge_methods_supported"] == ["S256"]
    # a browser-based client may call registration and token itself; the pages get no CORS
    pre = httpx.options(f"{mcpd_oauth.base}/oauth/register")
    assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == "*"
    token = httpx.post(f"{mcpd_oauth.base}/oauth/token", data={"grant_type": "x"})
    assert token.headers["access-control-allow-origin"] == "*"
    page = httpx.get(f"{mcpd_oauth.base}/oauth/authorize")
    assert "access-control-allow-origin" not in page.headers
    assert (
        page.headers["x-frame-options"] == "DENY"
        and "frame-ancestors 'none'" in (page.headers["content-security-policy"])
    )


def test_registration_is_rate_limited_and_unused_clients_expire(mcpd_oauth: Mcpd) -> None:
    rt = mcpd_oauth.app.state.runtime
    saved = rt.registration_limiter
    rt.registration_limiter = RateLimiter(2, 60.0)
    try:
        f = Flow(mcpd_oauth.base, "")
        assert [f.register().status_code for _ in range(3)] == [201, 201, 429]
        assert f.register().json()["error"] == "temporarily_unavailable"
        f.close()
    finally:
        rt.registration_limiter = saved
    with rt.sessions() as s:
        from datetime import timedelta

        from mcpd.models import utcnow

        later = utcnow() + timedelta(days=2)
        gone = sweep_clients(s, rt.settings.oauth_client_unused_ttl, later)
        s.commit()
        # every client of this module that never got a grant, and none that did
        assert gone >= 2
        from sqlalchemy import func, select

        from mcpd.models import OAuthClient, OAuthGrant

        kept = s.scalar(select(func.count()).select_from(OAuthClient))
        with_grants = s.scalar(select(func.count(func.distinct(OAuthGrant.client_id))))
        assert kept == with_grants


def granted(m: Mcpd) -> tuple[Flow, dict[str, Any]]:
    f = Flow(m.base, f"{m.base}/api/v1/servers/demo/mcp")
    assert f.register().status_code == 201
    r = f.exchange(f.code(DEV, PASSWORD, "web"))
    assert r.status_code == 200, r.text
    return f, r.json()


def test_introspection_needs_proxy_and_tells_subject_and_resource(mcpd_oauth: Mcpd) -> None:
    m = mcpd_oauth
    f, tokens = granted(m)
    try:
        url, form = f"{m.base}/oauth/introspect", {"token": tokens["access_token"]}
        assert httpx.post(url, data=form).status_code == 401  # anonymous
        dev = httpx.post(
            f"{m.base}/api/v1/auth/login", json={"username": DEV, "password": PASSWORD}
        )
        refused = httpx.post(url, data=form, headers=m.h(dev.json()["token"]))
        assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"
        claims = httpx.post(url, data=form, headers=m.h()).json()  # the admin holds proxy
        assert claims["active"] and claims["aud"] == f.resource and claims["project"] == "web"
        assert claims["sub"].startswith("McpToken:") and claims["username"] == DEV
        refresh = {"token": tokens["refresh_token"]}  # not an access token: never active
        assert httpx.post(url, data=refresh, headers=m.h()).json() == {"active": False}
    finally:
        f.close()


def test_a_disabled_creator_takes_its_grants_power_at_once(mcpd_oauth: Mcpd) -> None:
    m = mcpd_oauth
    f, tokens = granted(m)
    demo, access = "/api/v1/servers/demo/mcp", tokens["access_token"]
    try:
        assert use(m, demo, access) == 200
        m.ok("PUT", f"/users/{DEV}", json={"disabled": True})
        assert use(m, demo, access) == 401
        claims = httpx.post(
            f"{m.base}/oauth/introspect", data={"token": access}, headers=m.h()
        ).json()
        assert claims == {"active": False}  # so mcplocal refuses it too
        assert f.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    finally:
        m.ok("PUT", f"/users/{DEV}", json={"disabled": False})
    try:  # the grant stays, and acts again once its user is enabled
        assert use(m, demo, access) == 200
        assert f.refresh(tokens["refresh_token"]).status_code == 200
    finally:
        f.close()
