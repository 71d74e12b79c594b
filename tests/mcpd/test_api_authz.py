"""Authorization through the API: route table, 403/404, ceilings, tokens, escalation, audit."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.mcpd.conftest import Api


def _setup_project(api: Api, name: str = "web") -> None:
    api.ok(
        "POST",
        "/servers",
        json={
            "name": f"{name}-srv",
            "transport": "http",
            "http": {"url": "http://127.0.0.1:9/mcp"},
        },
    )
    api.ok("POST", "/projects", json={"name": name, "servers": [f"{name}-srv"]})


def _audit(api: Api, **filters: str) -> list[dict[str, object]]:
    q = "&".join(f"{k}={v}" for k, v in filters.items())
    return api.ok("GET", f"/auditevents?{q}")["items"]  # type: ignore[no-any-return]


def test_403_names_the_reason_and_404_hides_what_cannot_be_viewed(api: Api) -> None:
    api.ok("POST", "/secrets", json={"name": "hidden", "data": {"k": "v"}})
    viewer = api.user("viewer", "role:view,resource:secrets")
    nobody = api.user("nobody")
    r = api.call("DELETE", "/secrets/hidden", viewer)
    assert r.status_code == 403
    assert "may not delete secrets/hidden" in r.json()["detail"]
    assert "no policy line allows User:viewer to delete" in r.json()["detail"]
    # nobody cannot view it: existing and missing look the same
    a = api.call("GET", "/secrets/hidden", nobody)
    b = api.call("GET", "/secrets/missing", nobody)
    assert a.status_code == b.status_code == 404
    assert a.json()["detail"] == "secrets `hidden` not found"
    assert api.call("DELETE", "/secrets/hidden", nobody).status_code == 404
    assert api.call("GET", "/secrets", nobody).status_code == 403
    denies = _audit(api, outcome="deny", kind="secrets")
    assert {(e["subject"], e["action"]) for e in denies} >= {
        ("viewer", "delete"),
        ("nobody", "get"),
        ("nobody", "delete"),
        ("nobody", "list"),
    }


def test_user_with_edit_on_rbac_cannot_grant_itself_admin(api: Api) -> None:
    mallory = api.user("mallory", "role:edit,resource:rbac")
    r = api.call(
        "POST",
        "/rbac",
        mallory,
        json={
            "name": "pwn",
            "subjects": ["User:mallory"],
            "roleBindings": ["role:admin,resource:*"],
        },
    )
    assert r.status_code == 403
    body = r.json()
    assert "cannot grant permissions it does not hold" in body["detail"]
    assert {m["verb"] for m in body["missing"]} >= {"create", "delete", "run", "backup"}
    assert api.call("GET", "/rbac/pwn").status_code == 404
    # nor by joining the admins group
    api.ok(
        "POST",
        "/rbac",
        json={
            "name": "grp",
            "subjects": ["User:mallory"],
            "roleBindings": ["role:edit,resource:groups"],
        },
    )
    r = api.call(
        "PUT", "/groups/admins", mallory, json={"members": ["root@example.com", "mallory"]}
    )
    assert r.status_code == 403
    assert "missing" in r.json()
    # what it holds, it may grant
    ok = api.call(
        "POST",
        "/rbac",
        mallory,
        json={
            "name": "share",
            "subjects": ["User:root@example.com"],
            "roleBindings": ["role:view,resource:rbac"],
        },
    )
    assert ok.status_code == 201, ok.text


def test_rbac_binding_takes_effect_at_once_and_goes_with_delete(api: Api) -> None:
    bob = api.user("bob")
    assert api.call("GET", "/servers", bob).status_code == 403
    api.ok(
        "POST",
        "/rbac",
        json={
            "name": "bob-view",
            "subjects": ["User:bob"],
            "roleBindings": ["role:view,resource:servers"],
        },
    )
    assert api.call("GET", "/servers", bob).status_code == 200
    api.ok("DELETE", "/rbac/bob-view")
    assert api.call("GET", "/servers", bob).status_code == 403


def test_group_membership_grants_and_revokes(api: Api) -> None:
    carol = api.user("carol")
    api.ok("POST", "/groups", json={"name": "devs", "members": ["carol"]})
    api.ok(
        "POST",
        "/rbac",
        json={
            "name": "devs-view",
            "subjects": ["Group:devs"],
            "roleBindings": ["role:view,resource:servers"],
        },
    )
    assert api.call("GET", "/servers", carol).status_code == 200
    api.ok("PUT", "/groups/devs", json={"members": []})
    assert api.call("GET", "/servers", carol).status_code == 403


def test_bad_bindings_and_subjects_are_422(api: Api) -> None:
    for body, msg in [
        (
            {"subjects": ["User:x"], "roleBindings": ["role:root,resource:servers"]},
            "unknown role `root`",
        ),
        ({"subjects": ["Bob"], "roleBindings": ["role:view,resource:servers"]}, "subject `Bob`"),
        ({"subjects": ["User:x"], "roleBindings": ["role:view"]}, "has no `resource`"),
        (
            {"subjects": [f"McpToken:{'a' * 64}"], "roleBindings": ["role:view,resource:servers"]},
            "bind a token",
        ),
    ]:
        r = api.call("POST", "/rbac", json={"name": "x", **body})
        assert r.status_code == 422, body
        assert msg in r.json()["detail"]


def _token(api: Api, bearer: str | None = None, **body: object) -> dict[str, object]:
    r = api.call("POST", "/mcptokens", bearer, json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_token_create_shows_raw_once_and_stores_only_the_hash(api: Api) -> None:
    _setup_project(api)
    t = _token(api, name="ci", project="web", bindings=["role:view,resource:servers"])
    raw = t["token"]
    assert isinstance(raw, str)
    assert raw.startswith("mcpctl_pat_")
    assert t["prefix"] == raw[:17]
    assert t["bindings"] == ["role:view,resource:servers,project:web"]
    listed = api.call("GET", "/mcptokens?project=web").text
    got = api.call("GET", "/mcptokens/ci").text
    import hashlib

    sha = hashlib.sha256(raw.encode()).hexdigest()
    for text in (listed, got):
        assert raw not in text
        assert sha not in text
    assert "token" not in api.ok("GET", "/mcptokens/ci")
    rt = api.client.app.state.runtime  # type: ignore[attr-defined]
    from sqlalchemy import text as sql

    with rt.engine.connect() as conn:
        dump = " ".join(str(r) for r in conn.execute(sql("SELECT * FROM mcp_tokens")))
    assert raw not in dump
    assert sha in dump
    # the token works within its binding and project
    assert api.call("GET", "/projects/web/servers", raw).status_code == 200
    assert api.call("GET", "/auth/me", raw).json()["tokenName"] == "ci"


def test_token_of_project_a_cannot_read_project_b(api: Api) -> None:
    _setup_project(api, "a")
    _setup_project(api, "b")
    raw = _token(api, name="ta", project="a", rbac="clone")["token"]
    assert api.call("GET", "/projects/a", raw).status_code == 200
    r = api.call("GET", "/projects/b", raw)
    assert r.status_code == 404
    assert api.call("GET", "/projects/b/servers", raw).status_code == 403
    assert _audit(api, outcome="deny", name="b", kind="projects")


def test_a_token_cannot_mint_a_token(api: Api) -> None:
    _setup_project(api)
    raw = _token(api, name="adm", project="web", rbac="clone")["token"]
    r = api.call("POST", "/mcptokens", raw, json={"name": "child", "project": "web"})
    assert r.status_code in (403, 404)
    assert api.call("GET", "/mcptokens/child").status_code == 404
    denies = _audit(api, outcome="deny", kind="mcptokens", action="create")
    assert denies
    assert denies[0]["tokenName"] == "adm"


def test_creator_ceiling_on_token_bindings(api: Api) -> None:
    _setup_project(api)
    dev = api.user("dev", "role:view,resource:servers", "role:edit,resource:mcptokens")
    r = api.call(
        "POST",
        "/mcptokens",
        dev,
        json={
            "name": "t1",
            "project": "web",
            "bindings": ["role:edit,resource:servers"],
        },
    )
    assert r.status_code == 403
    missing = {m["verb"] for m in r.json()["missing"]}
    assert missing == {"create", "update", "delete", "attach"}  # edit includes attach
    ok = _token(api, dev, name="t2", project="web", bindings=["role:view,resource:servers"])
    assert ok["rbacMode"] == "bindings"
    r = api.call(
        "POST",
        "/mcptokens",
        dev,
        json={
            "name": "t3",
            "project": "web",
            "bindings": ["role:view,resource:servers,project:other"],
        },
    )
    assert r.status_code == 422
    assert "acts only in project web" in r.json()["detail"]


def test_empty_token_authenticates_but_can_do_nothing(api: Api) -> None:
    _setup_project(api)
    raw = _token(api, name="e", project="web")["token"]
    assert api.call("GET", "/auth/me", raw).status_code == 200
    assert api.call("GET", "/projects/web", raw).status_code == 404
    assert api.call("GET", "/projects/web/servers", raw).status_code == 403


def test_revoked_token_is_401_and_its_binding_is_gone(api: Api) -> None:
    _setup_project(api)
    raw = _token(api, name="r", project="web", rbac="clone")["token"]
    assert api.call("GET", "/projects/web", raw).status_code == 200
    api.ok("POST", "/mcptokens/r/revoke")
    r = api.call("GET", "/projects/web", raw)
    assert r.status_code == 401
    assert r.json()["detail"] == "invalid or expired credentials"
    assert api.call("GET", "/rbac/mcptoken-r").status_code == 404
    intro = api.client.get("/api/v1/mcptokens/introspect", headers=api.h(raw)).json()
    assert intro["status"] == "revoked"
    assert intro["active"] is False


def test_expired_and_unknown_tokens(api: Api) -> None:
    _setup_project(api)
    raw = _token(api, name="soon", project="web", ttl="1m", rbac="clone")["token"]
    rt = api.client.app.state.runtime  # type: ignore[attr-defined]
    from sqlalchemy import text as sql

    with rt.engine.begin() as conn:
        conn.execute(
            sql("UPDATE mcp_tokens SET expires_at = :t WHERE name = 'soon'"),
            {"t": "2000-01-01 00:00:00"},
        )
    r = api.call("GET", "/projects/web", raw)
    assert r.status_code == 401
    intro = api.client.get("/api/v1/mcptokens/introspect", headers=api.h(raw)).json()
    assert intro["status"] == "expired"
    unknown = "mcpctl_pat_" + "0" * 43
    intro = api.client.get("/api/v1/mcptokens/introspect", headers=api.h(unknown)).json()
    assert intro == {
        "active": False,
        "status": "unknown",
        "name": None,
        "project": None,
        "expiresAt": None,
    }


def test_deleted_creator_takes_its_tokens_power(api: Api) -> None:
    _setup_project(api)
    dev = api.user("dev2", "role:view,resource:projects", "role:edit,resource:mcptokens")
    raw = _token(api, dev, name="dt", project="web", rbac="clone")["token"]
    assert api.call("GET", "/projects/web", raw).status_code == 200
    api.ok("DELETE", "/users/dev2")
    assert api.call("GET", "/projects/web", raw).status_code == 401


def test_demoted_creator_takes_its_tokens_power(api: Api) -> None:
    _setup_project(api)
    api.ok("POST", "/users", json={"name": "lead", "password": "correct horse battery"})
    api.ok(
        "POST",
        "/rbac",
        json={
            "name": "lead",
            "subjects": ["User:lead"],
            "roleBindings": ["role:view,resource:projects", "role:edit,resource:mcptokens"],
        },
    )
    lead = api.login("lead")
    raw = _token(api, lead, name="lt", project="web", rbac="clone")["token"]
    assert api.call("GET", "/projects/web", raw).status_code == 200
    api.ok(
        "PUT",
        "/rbac/lead",
        json={"subjects": ["User:lead"], "roleBindings": ["role:edit,resource:mcptokens"]},
    )
    r = api.call("GET", "/projects/web", raw)
    assert r.status_code == 404  # cannot view it any more
    assert (
        "creator User:lead is not allowed"
        in _audit(api, outcome="deny", name="web")[0]["detail"]["reason"]
    )  # type: ignore[index]


def test_can_i_self_and_impersonation(api: Api) -> None:
    bob = api.user("bob", "role:view,resource:servers")
    r = api.ok("POST", "/auth/can-i", bob, json={"action": "get", "kind": "servers", "name": "x"})
    assert r["allowed"] is True
    r = api.ok("POST", "/auth/can-i", bob, json={"action": "delete", "kind": "servers"})
    assert r["allowed"] is False
    assert "no policy line" in r["reason"]
    r = api.call(
        "POST",
        "/auth/can-i",
        bob,
        json={"action": "get", "kind": "servers", "subject": "User:root@example.com"},
    )
    assert r.status_code == 403
    r = api.ok(
        "POST", "/auth/can-i", json={"action": "get", "kind": "servers", "subject": "User:bob"}
    )
    assert r["allowed"] is True


def test_mutations_are_audited_with_request_id(api: Api) -> None:
    r = api.client.post(
        "/api/v1/projects", json={"name": "aud"}, headers={**api.h(), "X-Request-Id": "req-123"}
    )
    assert r.status_code == 201
    assert r.headers["x-request-id"] == "req-123"
    (event,) = _audit(api, kind="projects", name="aud")
    assert event["outcome"] == "allow"
    assert event["action"] == "create"
    assert event["requestId"] == "req-123"
    assert event["subject"] == "root@example.com"


def test_audit_log_needs_the_audit_operation(api: Api) -> None:
    bob = api.user("bob", "role:admin,resource:projects")
    assert api.call("GET", "/auditevents", bob).status_code == 403
    api.ok(
        "POST",
        "/rbac",
        json={"name": "aud", "subjects": ["User:bob"], "roleBindings": ["action:audit"]},
    )
    assert api.call("GET", "/auditevents", bob).status_code == 200


def test_failed_write_leaves_the_database_as_it_was(api: Api) -> None:
    before = api.ok("GET", "/rbac")["items"]
    r = api.call(
        "POST",
        "/rbac",
        json={
            "name": "bad",
            "subjects": ["User:x"],
            "roleBindings": ["role:view,resource:servers", "role:nope,resource:x"],
        },
    )
    assert r.status_code == 422
    assert api.ok("GET", "/rbac")["items"] == before
    rt = api.client.app.state.runtime  # type: ignore[attr-defined]
    assert not rt.authorizer.decide("User:x", "", "servers", "s", "get").allowed


def test_a_failure_mid_transaction_writes_no_rule_and_changes_no_decision(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mcpd import audit

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(audit, "record", broken)
    client = TestClient(api.client.app, raise_server_exceptions=False)
    r = client.post(
        "/api/v1/rbac",
        headers=api.h(),
        json={
            "name": "half",
            "subjects": ["User:x"],
            "roleBindings": ["role:view,resource:servers"],
        },
    )
    assert r.status_code == 500
    assert r.json()["detail"] == "internal error; see mcpd's log"
    monkeypatch.undo()
    assert api.call("GET", "/rbac/half").status_code == 404
    rt = api.client.app.state.runtime  # type: ignore[attr-defined]
    from mcpd.policystore import load_stored_rules

    assert not any(r.sub == "User:x" for r in load_stored_rules(rt.engine))
    assert not rt.authorizer.decide("User:x", "", "servers", "s", "get").allowed


def test_the_database_away_is_a_503_to_retry_and_writes_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from mcpd import audit
    from mcpd.api import deps

    def away(*_: object, **__: object) -> None:
        raise OperationalError("COMMIT", {}, Exception("the database system is shutting down"))

    client = TestClient(api.client.app, raise_server_exceptions=False)
    body = {"name": "half", "subjects": ["User:x"], "roleBindings": ["role:view,resource:servers"]}
    fresh = api.login("root@example.com")  # not yet looked up (nor cached)
    monkeypatch.setattr(audit, "record", away)  # in a route's transaction
    r = client.post("/api/v1/rbac", headers=api.h(), json=body)
    monkeypatch.setattr(deps, "authenticate", away)  # in the guard, before the MCP endpoint
    r2 = client.post("/api/v1/servers/s/mcp", headers={"Authorization": f"Bearer {fresh}"})
    monkeypatch.undo()
    for resp in (r, r2):
        assert resp.status_code == 503, resp.text
        assert resp.headers["retry-after"] == "1"
        assert "nothing was written: retry shortly" in resp.json()["detail"]
    assert api.call("GET", "/rbac/half").status_code == 404


def test_user_editor_cannot_take_over_a_stronger_account(api: Api) -> None:
    ed = api.user("ed", "role:edit,resource:users")
    r = api.call("PUT", "/users/root@example.com", ed, json={"password": "taken over!"})
    assert r.status_code == 403
    assert "cannot grant permissions it does not hold" in r.json()["detail"]
    assert api.login("root@example.com")  # the admin's password is unchanged
    # a weaker account is fine, and anyone may change their own password
    api.user("intern")
    assert (
        api.call("PUT", "/users/intern", ed, json={"password": "new password"}).status_code == 200
    )
    assert api.call("PUT", "/users/ed", ed, json={"password": "my new password"}).status_code == 200


def test_recreating_a_deleted_users_name_needs_its_leftover_bindings(api: Api) -> None:
    api.user("boss", "role:admin,resource:*")
    api.ok("DELETE", "/users/boss")
    ed = api.user("ed", "role:edit,resource:users")
    r = api.call("POST", "/users", ed, json={"name": "boss", "password": "i am the boss now"})
    assert r.status_code == 403
    assert (
        api.call("POST", "/users", json={"name": "boss", "password": "admin may"}).status_code
        == 201
    )


def test_token_rbac_names_are_reserved(api: Api) -> None:
    r = api.call(
        "POST",
        "/rbac",
        json={
            "name": "mcptoken-ci",
            "subjects": ["User:bob"],
            "roleBindings": ["role:view,resource:servers"],
        },
    )
    assert r.status_code == 422
    assert "reserved" in r.json()["detail"]


def test_a_ceiling_refusal_is_audited(api: Api) -> None:
    mallory = api.user("mallory", "role:edit,resource:rbac")
    r = api.call(
        "POST",
        "/rbac",
        mallory,
        json={
            "name": "pwn",
            "subjects": ["User:mallory"],
            "roleBindings": ["role:admin,resource:*"],
        },
    )
    assert r.status_code == 403
    (event,) = _audit(api, subject="mallory", outcome="deny")
    assert (event["action"], event["kind"]) == ("create", "rbac")
    assert "cannot grant permissions" in event["detail"]["reason"]  # type: ignore[index]
