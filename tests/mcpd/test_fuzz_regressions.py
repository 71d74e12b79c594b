"""Bugs the OpenAPI fuzzing (test_fuzz_openapi.py) found, each pinned on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from authz.tokens import token_sha256
from tests.mcpd.conftest import Api


@pytest.fixture
def lenient(api: Api) -> Api:
    """The same app, but a server error comes back as a 500 instead of being raised."""
    return Api(TestClient(api.client.app, raise_server_exceptions=False), api.admin)


def _postgres(api: Api) -> bool:
    return bool(api.client.app.state.runtime.engine.dialect.name == "postgresql")  # type: ignore[attr-defined]


def test_a_deny_for_an_over_long_project_is_audited_not_a_500(lenient: Api) -> None:
    # was: 500 on PostgreSQL (the deny's audit row overflowed `project` varchar(63))
    project = "0" * 64
    r = lenient.call("GET", f"/mcptokens?project={project}")
    assert r.status_code == 403, r.text
    assert "invalid request" in r.json()["detail"]
    events = lenient.ok("GET", "/auditevents?outcome=deny&kind=mcptokens")["items"]
    assert len(events) == 1
    assert len(events[0]["project"]) <= 63
    assert events[0]["project"].startswith("0" * 62)


def test_a_deny_for_a_name_with_nul_or_too_long_is_audited_not_a_500(lenient: Api) -> None:
    # was: 500 on PostgreSQL (NUL characters and names over 255 characters in the audit row)
    nobody = lenient.user("nobody")
    for name in ("a%00b", "a" * 300):
        r = lenient.call("GET", f"/servers/{name}", nobody)
        assert r.status_code == 404, r.text
    events = lenient.ok("GET", "/auditevents?outcome=deny&kind=servers")["items"]
    assert len(events) == 2
    assert {len(e["name"]) for e in events} == {3, 255}
    assert all("\x00" not in e["name"] for e in events)


def test_a_value_the_database_refuses_is_a_422_not_a_500(lenient: Api) -> None:
    # was: 500 on PostgreSQL, which refuses NUL characters in text
    cases = [
        ("GET", "/servers?after=a%00b", None),
        ("POST", "/auth/login", {"username": "a\x00b", "password": "whatever"}),
        ("POST", "/projects", {"name": "p1", "description": "a\x00b"}),
        ("POST", "/users", {"name": "u1", "displayName": "a\x00b"}),
    ]
    for method, path, body in cases:
        r = lenient.call(method, path, json=body)
        if _postgres(lenient):
            assert r.status_code == 422, (path, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert "NUL character" in r.json()["detail"]
        else:  # SQLite stores NUL characters
            assert r.status_code < 500, (path, r.text)


def test_audit_paging_past_the_largest_id_is_a_422_not_a_500(lenient: Api) -> None:
    # was: 500 on both (SQLite cannot bind the integer, PostgreSQL's integer overflows)
    r = lenient.call("GET", "/auditevents?before=99999999999999999999")
    assert r.status_code == 422, r.text
    assert "before" in r.json()["detail"]
    assert lenient.call("GET", "/auditevents?before=2147483647").status_code == 200


@pytest.mark.parametrize("ttl", ["999999w", "9999-12-31T23:59:59-14:00", "9999-12-31"])
def test_a_token_ttl_past_what_can_be_stored_is_a_422(lenient: Api, ttl: str) -> None:
    # was: `999999w` a 500 (date overflow) on both; on PostgreSQL, `9999-12-31T23:59:59-14:00`
    # was stored but could not be read back, making GET /mcptokens fail for good
    lenient.ok("POST", "/projects", json={"name": "web"})
    r = lenient.call("POST", "/mcptokens", json={"name": "t", "project": "web", "ttl": ttl})
    assert r.status_code == 422, r.text
    assert "too far in the future; use `never`" in r.json()["detail"]
    assert lenient.ok("GET", "/mcptokens")["items"] == []
    ok = lenient.call(
        "POST", "/mcptokens", json={"name": "t", "project": "web", "ttl": "9999-12-29T00:00:00"}
    )
    assert ok.status_code == 201, ok.text
    assert lenient.ok("GET", "/mcptokens/t")["expiresAt"].startswith("9999-12-29")


def test_a_token_is_never_shown_its_own_hash(api: Api) -> None:
    # was: a 403 detail and a can-i reason said `no policy line allows McpToken:<sha256> ...`
    api.ok("POST", "/projects", json={"name": "web"})
    raw = api.ok("POST", "/mcptokens", json={"name": "ci", "project": "web"})["token"]
    sha = token_sha256(raw)
    r = api.call("GET", "/projects/web/servers", raw)
    assert r.status_code == 403
    assert sha not in r.text
    assert "no policy line allows McpToken:ci to list servers in project web" in r.text
    body = {"action": "get", "kind": "servers", "project": "web"}
    r = api.call("POST", "/auth/can-i", raw, json=body)
    assert r.status_code == 200
    assert sha not in r.text
    assert r.json()["reason"].startswith("no policy line allows McpToken:ci ")
    # the audit log, for those who may read it, still names the token by its hash
    denies = api.ok("GET", "/auditevents?outcome=deny&kind=servers")["items"]
    assert [(e["tokenName"], e["tokenSha"]) for e in denies] == [("ci", sha)]
    assert sha in denies[0]["detail"]["reason"]
