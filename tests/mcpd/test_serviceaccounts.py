"""Service accounts (issue 15): a machine identity with tokens that do not lapse with a login
session, hashed at rest, shown once, rotatable (two valid at once) and revocable, bound by
RBAC like any subject; carried by backup and apply without its tokens."""

from __future__ import annotations

import hashlib

from sqlalchemy import text as sql

from mcpd import manifests
from tests.mcpd.conftest import Api


def _create(api: Api, name: str, bearer: str | None = None) -> dict[str, object]:
    r = api.call("POST", "/serviceaccounts", bearer, json={"name": name, "description": "bot"})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_a_token_is_shown_once_stored_as_its_hash_and_holds_nothing_until_bound(
    api: Api,
) -> None:
    created = _create(api, "robot")
    raw = created["token"]
    assert isinstance(raw, str) and raw.startswith("mcpctl_sa_")
    assert created["tokenPrefix"] == raw[:17]
    sha = hashlib.sha256(raw.encode()).hexdigest()
    for text in (
        api.call("GET", "/serviceaccounts").text,
        api.call("GET", "/serviceaccounts/robot").text,
    ):
        assert raw not in text and sha not in text
    rt = api.client.app.state.runtime  # type: ignore[attr-defined]
    with rt.engine.connect() as conn:
        dump = " ".join(str(r) for r in conn.execute(sql("SELECT * FROM service_account_tokens")))
    assert raw not in dump and sha in dump

    me = api.ok("GET", "/auth/me", raw)
    assert me == {
        "subject": "ServiceAccount:robot",
        "user": None,
        "tokenName": None,
        "project": None,
        "serviceAccount": "robot",
    }
    r = api.call("GET", "/servers", raw)  # no power by default
    assert r.status_code == 403
    assert "serviceaccount robot may not list servers" in r.json()["detail"]
    api.ok(
        "POST",
        "/rbac",
        json={
            "name": "robot",
            "subjects": ["ServiceAccount:robot"],
            "roleBindings": ["role:view,resource:servers"],
        },
    )
    assert api.call("GET", "/servers", raw).status_code == 200
    got = api.ok("GET", "/serviceaccounts/robot")
    assert got["lastUsedAt"] is not None
    assert got["tokens"][0]["lastUsedAt"] is not None
    assert got["tokens"][0]["createdBy"] == "root@example.com"
    # a service account is no login: it cannot log out, nor follow a user's own policy
    assert api.call("POST", "/auth/logout", raw).status_code == 403
    assert api.call("GET", "/auth/me/policy", raw).status_code == 403


def test_rotation_keeps_two_tokens_valid_until_the_old_one_is_revoked(api: Api) -> None:
    old = _create(api, "robot")
    new = api.ok("POST", "/serviceaccounts/robot/tokens", json={})
    assert new["token"] != old["token"]
    for raw in (old["token"], new["token"]):
        assert api.call("GET", "/auth/me", raw).status_code == 200
    prefixes = [t["prefix"] for t in new["tokens"]]
    assert prefixes == [old["tokenPrefix"], new["tokenPrefix"]]

    api.ok("POST", f"/serviceaccounts/robot/tokens/{old['tokenPrefix']}/revoke")
    r = api.call("GET", "/auth/me", old["token"])
    assert r.status_code == 401
    assert api.call("GET", "/auth/me", new["token"]).status_code == 200
    api.ok("POST", f"/serviceaccounts/robot/tokens/{old['tokenPrefix']}/revoke")  # a no-op
    r = api.call("POST", "/serviceaccounts/robot/tokens/mcpctl_sa_nope/revoke")
    assert r.status_code == 404
    assert new["tokenPrefix"] in r.json()["detail"]
    events = api.ok("GET", "/auditevents?kind=serviceaccounts")["items"]
    assert {e["action"] for e in events} >= {"create", "mint", "revoke"}
    assert all(old["token"] not in str(e) for e in events)

    api.ok("DELETE", "/serviceaccounts/robot")
    assert api.call("GET", "/auth/me", new["token"]).status_code == 401


def test_an_account_holds_a_bounded_number_of_live_tokens(api: Api) -> None:
    _create(api, "robot")
    for _ in range(4):
        api.ok("POST", "/serviceaccounts/robot/tokens", json={})
    r = api.call("POST", "/serviceaccounts/robot/tokens", json={})
    assert r.status_code == 409
    assert "revoke one first" in r.json()["detail"]


def test_an_mcptoken_never_sees_service_accounts(api: Api) -> None:
    _create(api, "robot")
    api.ok("POST", "/projects", json={"name": "web"})
    raw = api.ok(
        "POST",
        "/mcptokens",
        json={"name": "ci", "project": "web", "bindings": ["role:admin,resource:*"]},
    )["token"]
    r = api.call("GET", "/serviceaccounts?project=web", raw)
    assert r.status_code == 403


def test_backup_and_apply_carry_the_account_never_its_tokens(api: Api) -> None:
    created = _create(api, "robot")
    text = api.call("GET", "/backup").text
    docs = [d for d in manifests.parse(text) if d.kind == "ServiceAccount"]
    assert [(d.name, d.body.description) for d in docs] == [("robot", "bot")]  # type: ignore[union-attr]
    assert str(created["tokenPrefix"]) not in text
    manifest = manifests.dump(
        [manifests.document("ServiceAccount", "robot", {"description": "changed"})]
    )
    done = api.ok("POST", "/apply", content=manifest)
    assert [(d["kind"], d["outcome"]) for d in done["items"]] == [("ServiceAccount", "updated")]
    assert api.ok("GET", "/serviceaccounts/robot")["description"] == "changed"
    # a restore into a fresh name makes the account with no token
    manifest = manifests.dump([manifests.document("ServiceAccount", "other", {})])
    api.ok("POST", "/restore", content=manifest)
    assert api.ok("GET", "/serviceaccounts/other")["tokens"] == []


def test_a_service_account_cannot_create_mcptokens(api: Api) -> None:
    raw = _create(api, "robot")["token"]
    api.ok(
        "POST",
        "/rbac",
        json={
            "name": "robot",
            "subjects": ["ServiceAccount:robot"],
            "roleBindings": ["role:admin,resource:*"],
        },
    )
    api.ok("POST", "/projects", json={"name": "web"})
    r = api.call("POST", "/mcptokens", raw, json={"name": "ci", "project": "web"})
    assert r.status_code == 403
    assert "serviceaccount robot cannot create tokens" in r.json()["detail"]
