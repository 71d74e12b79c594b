"""GET /auth/can-i/list and GET /auth/who-can: the access documents, asked of mcpd.

The documents are the offline tools' (authz.access, authz.whocan; tests/authz holds them
equal to deciding every request); here: who may ask what, the operations checked, denies
audited, token hashes kept in mcpd, bad requests answered with 422.
"""

from __future__ import annotations

from tests.mcpd.conftest import Api


def _setup(api: Api) -> str:
    api.ok("POST", "/servers", json={"name": "web-srv", "transport": "http",
                                     "http": {"url": "http://127.0.0.1:9/mcp"}})  # fmt: skip
    api.ok("POST", "/projects", json={"name": "web", "servers": ["web-srv"]})
    return api.user("bob", "role:view,resource:servers,project:web")


def _denies(api: Api, subject: str) -> list[dict[str, object]]:
    return api.ok("GET", f"/auditevents?outcome=deny&subject={subject}")["items"]  # type: ignore[no-any-return]


def test_my_access_list_names_the_lines(api: Api) -> None:
    bob = _setup(api)
    doc = api.ok("GET", "/auth/can-i/list", bob)
    assert (doc["schemaVersion"], doc["kind"], doc["subject"]) == (1, "AccessList", "User:bob")
    assert doc["project"] is None
    mine = [g for g in doc["allowed"] if g["via"] == "User:bob"]
    assert [(g["project"], g["kind"], g["name"], g["verbs"]) for g in mine] == [
        ("web", "servers", "*", ["get", "list"])
    ]
    assert mine[0]["line"]["rule"] == "p, User:bob, web, servers, *, role:view, allow"
    assert mine[0]["line"]["source"].startswith("db:rbac/")
    # --project keeps the lines that apply there (its own and every project's)
    other = api.ok("GET", "/auth/can-i/list?project=prod", bob)
    assert all(g["project"] in ("prod", "*") for g in (*other["allowed"], *other["denied"]))
    assert not any(g["via"] == "User:bob" for g in other["allowed"])


def test_another_subjects_list_needs_impersonate_and_the_deny_is_audited(api: Api) -> None:
    bob = _setup(api)
    before = len(_denies(api, "bob"))
    r = api.call("GET", "/auth/can-i/list?subject=User:admin", bob)
    assert r.status_code == 403
    assert (
        "reading another subject's access list needs the impersonate operation"
        in (r.json()["detail"])
    )
    assert r.json()["missing"][0]["verb"] == "impersonate"
    events = _denies(api, "bob")
    assert len(events) == before + 1 and events[0]["action"] == "impersonate"
    # asking about oneself by name is not impersonating
    assert api.ok("GET", "/auth/can-i/list?subject=User:bob", bob)["subject"] == "User:bob"
    # the admin holds impersonate
    assert api.ok("GET", "/auth/can-i/list?subject=User:bob")["subject"] == "User:bob"
    # impersonate in one project lets one read lists there, not everywhere
    carol = api.user("carol", "action:impersonate,project:web")
    assert api.ok("GET", "/auth/can-i/list?subject=User:bob&project=web", carol)["allowed"]
    assert api.call("GET", "/auth/can-i/list?subject=User:bob", carol).status_code == 403


def test_who_can_needs_the_operation_on_the_object(api: Api) -> None:
    bob = _setup(api)
    r = api.call("GET", "/auth/who-can?verb=get&kind=servers&name=web-srv&project=web", bob)
    assert r.status_code == 403
    assert "asking who may do something needs the who-can operation" in r.json()["detail"]
    assert _denies(api, "bob")[0]["action"] == "who-can"
    doc = api.ok("GET", "/auth/who-can?verb=get&kind=servers&name=web-srv&project=web")
    assert (doc["schemaVersion"], doc["kind"]) == (1, "WhoCan")
    assert doc["request"] == {"verb": "get", "kind": "servers", "name": "web-srv",
                              "project": "web"}  # fmt: skip
    who = {a["subject"]: a for a in doc["allowed"]}
    assert who["User:bob"]["path"] == ["User:bob", "role:view"]
    assert who["User:bob"]["line"]["rule"] == "p, User:bob, web, servers, *, role:view, allow"
    # a reviewer of project web asks about web, not about another project
    rita = api.user("rita", "action:who-can,project:web")
    assert api.ok("GET", "/auth/who-can?verb=get&kind=servers&project=web", rita)["allowed"]
    r = api.call("GET", "/auth/who-can?verb=get&kind=servers&project=prod", rita)
    assert r.status_code == 403


def test_tokens_are_named_not_hashed_and_never_ask_who_can(api: Api) -> None:
    _setup(api)
    body = {"name": "ci", "project": "web", "bindings": ["role:view,resource:servers"]}
    r = api.call("POST", "/mcptokens", json=body)
    assert r.status_code == 201, r.text
    raw = r.json()["token"]
    doc = api.ok("GET", "/auth/who-can?verb=get&kind=servers&name=web-srv&project=web")
    text = str(doc)
    assert "McpToken:ci" in text
    assert not any(len(s) == 64 + 9 and s.startswith("McpToken:") for s in text.split("'"))
    own = api.ok("GET", "/auth/can-i/list", raw)
    assert own["subject"] == "McpToken:ci" and "acts only in project web" in own["note"]
    r = api.call("GET", "/auth/who-can?verb=get&kind=servers&project=web", raw)
    assert r.status_code == 403  # policies/deny.csv: tokens never ask who else may


def test_bad_requests_are_422_with_the_reason(api: Api) -> None:
    for query, msg in [
        ("verb=get&kind=nope", "unknown resource kind `nope`"),
        ("verb=GET&kind=servers", "verb"),
        ("verb=get&kind=servers&project=Bad_Project", "project"),
    ]:
        r = api.call("GET", f"/auth/who-can?{query}")
        assert r.status_code == 422, (query, r.text)
        assert msg in r.json()["detail"], r.json()
    r = api.call("GET", "/auth/can-i/list?subject=nobody")
    assert r.status_code == 422
    assert api.call("GET", "/auth/who-can?verb=get").status_code == 422  # kind is required
    assert (
        api.call("GET", f"/auth/who-can?verb=get&kind=servers&name={'x' * 300}").status_code == 422
    )
