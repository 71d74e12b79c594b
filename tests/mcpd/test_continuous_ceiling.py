"""Issue 13: the continuous ceiling for every creator state, sessions that end, reserved
subjects - on a real mcpd app over each real database."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, func, select

from mcpd.models import LoginSession, User
from tests.mcpd.conftest import PASSWORD, Api


def _dev_with_token(api: Api) -> tuple[str, str]:
    api.ok("POST", "/projects", json={"name": "web"})
    dev = api.user(
        "dev",
        "role:view,resource:projects",
        "role:view,resource:servers",
        "role:edit,resource:mcptokens",
    )
    body = {"name": "t", "project": "web", "bindings": ["role:view,resource:projects"]}
    raw: str = api.ok("POST", "/mcptokens", dev, json=body)["token"]
    return dev, raw


def _set_disabled(api: Api, path: str, disabled: bool) -> None:
    """Disable or enable `dev` through the API, or a restore or apply of its manifest."""
    if path == "/users/dev":
        api.ok("PUT", path, json={"disabled": disabled})
        return
    flag = "true" if disabled else "false"
    doc = f"apiVersion: mcpctl/v1\nkind: User\nmetadata:\n  name: dev\nspec:\n  disabled: {flag}\n"
    r = api.call("POST", path, content=doc)
    assert r.status_code == 200 and r.json()["updated"] == 1, r.text


@pytest.mark.parametrize("path", ["/users/dev", "/restore", "/apply"])
def test_a_disabled_creators_token_is_refused_at_once_and_works_again_when_enabled(
    api: Api, path: str
) -> None:
    dev, raw = _dev_with_token(api)
    assert api.call("GET", "/projects/web", raw).status_code == 200
    _set_disabled(api, path, True)
    assert _sessions_of(api, "dev") == 0  # its sessions ended, not merely refused
    assert api.call("GET", "/projects/web", raw).status_code == 401
    assert api.call("GET", "/auth/me", raw).status_code == 401  # an unguarded route too
    grant = api.client.app.state.runtime.authorizer.token(_sha(raw))  # type: ignore[attr-defined]
    assert grant.creator_disabled
    d = api.client.app.state.runtime.authorizer.decide(  # type: ignore[attr-defined]
        grant.subject, "web", "projects", "web", "get"
    )
    assert not d.allowed and "creator User:dev is disabled" in d.reason
    _set_disabled(api, path, False)
    assert api.call("GET", "/auth/me", dev).status_code == 401  # an ended session stays so
    assert api.call("GET", "/projects/web", raw).status_code == 200


def _sha(raw: str) -> str:
    from authz.tokens import token_sha256

    return token_sha256(raw)


def _sessions_of(api: Api, name: str) -> int:
    engine = create_engine(api.client.app.state.runtime.settings.database_url)  # type: ignore[attr-defined]
    try:
        with engine.connect() as conn:
            uid = conn.scalar(select(User.id).where(User.name == name))
            return int(
                conn.scalar(
                    select(func.count())
                    .select_from(LoginSession)
                    .where(LoginSession.user_id == uid)
                )
                or 0
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("change", ["disable", "password", "delete"])
def test_disable_delete_and_password_change_end_every_session(api: Api, change: str) -> None:
    first = api.user("carol", "role:view,resource:servers")
    second = api.login("carol")
    for bearer in (first, second):
        assert api.call("GET", "/servers", bearer).status_code == 200
    assert _sessions_of(api, "carol") == 2
    if change == "disable":
        api.ok("PUT", "/users/carol", json={"disabled": True})
    elif change == "password":
        api.ok("PUT", "/users/carol", json={"password": "a new long password"})
    else:
        api.ok("DELETE", "/users/carol")
    for bearer in (first, second):
        assert api.call("GET", "/servers", bearer).status_code == 401
    if change != "delete":
        assert _sessions_of(api, "carol") == 0  # the rows went, not just the cache
    if change == "password":
        api.login("carol", "a new long password")
        r = api.client.post("/api/v1/auth/login", json={"username": "carol", "password": PASSWORD})
        assert r.status_code == 401
    assert api.call("GET", "/servers").status_code == 200  # the admin's session is unaffected


def test_a_display_name_change_leaves_sessions_alone(api: Api) -> None:
    bearer = api.user("dora", "role:view,resource:servers")
    api.ok("PUT", "/users/dora", json={"displayName": "Dora"})
    assert api.call("GET", "/servers", bearer).status_code == 200


@pytest.mark.parametrize("subject", ["Group:system:mcptokens", "Group:system:anything"])
def test_reserved_subjects_cannot_be_bound(api: Api, subject: str) -> None:
    body = {"name": "sneaky", "subjects": [subject], "roleBindings": ["role:run,resource:servers"]}
    r = api.call("POST", "/rbac", json=body)
    assert r.status_code == 422, r.text
    assert f"`{subject}` is reserved" in r.json()["detail"]
    assert api.call("GET", "/rbac/sneaky").status_code == 404
    ok = {"name": "fine", "subjects": ["User:x"], "roleBindings": ["role:view,resource:servers"]}
    api.ok("POST", "/rbac", json=ok)
    change = {"subjects": ["User:x", subject], "roleBindings": ok["roleBindings"]}
    r = api.call("PUT", "/rbac/fine", json=change)
    assert r.status_code == 422, r.text
    assert api.ok("GET", "/rbac/fine")["subjects"] == ["User:x"]  # the database as it was


@pytest.mark.parametrize("name", ["system:mcptokens", "system:new"])
def test_reserved_groups_cannot_be_created_or_joined(api: Api, name: str) -> None:
    api.ok("POST", "/users", json={"name": "eve"})
    r = api.call("POST", "/groups", json={"name": name, "members": ["eve"]})
    assert r.status_code == 422, r.text
    assert api.call("GET", f"/groups/{name}").status_code in (404, 422)
    # and a restore cannot smuggle one in either
    rules = api.client.app.state.runtime.authorizer.rules()  # type: ignore[attr-defined]
    assert not any(r.values[:2] == ("User:eve", f"Group:{name}") for r in rules)


def test_a_token_name_taken_in_an_unseen_project_answers_like_any_taken_name(api: Api) -> None:
    api.ok("POST", "/projects", json={"name": "web"})
    api.ok("POST", "/projects", json={"name": "secret-proj"})
    api.ok("POST", "/mcptokens", json={"name": "hidden", "project": "secret-proj"})
    dev = api.user(
        "dev", "role:edit,resource:mcptokens,project:web", "role:view,resource:projects,name:web"
    )
    assert api.call("GET", "/mcptokens/hidden", dev).status_code == 404  # unseen
    api.ok("POST", "/mcptokens", dev, json={"name": "mine", "project": "web"})
    unseen = api.call("POST", "/mcptokens", dev, json={"name": "hidden", "project": "web"})
    seen = api.call("POST", "/mcptokens", dev, json={"name": "mine", "project": "web"})
    assert unseen.status_code == seen.status_code == 409
    assert unseen.json()["detail"].replace("hidden", "N") == seen.json()["detail"].replace(
        "mine", "N"
    )
    assert "is not available" in unseen.json()["detail"] and "secret-proj" not in unseen.text
