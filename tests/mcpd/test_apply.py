"""POST /api/v1/apply (``mcpctl apply``): restore's all-or-nothing import for any caller,
with every document asked exactly what the API would ask for that object - and nothing
learnt about objects the caller may not change."""

from __future__ import annotations

from typing import Any

from mcpd import manifests
from tests.mcpd.conftest import Api

SERVER = {"transport": "http", "http": {"url": "http://127.0.0.1:9/mcp"}}


def manifest(*docs: tuple[str, str, dict[str, Any]]) -> str:
    return manifests.dump(manifests.document(k, n, s) for k, n, s in docs)


def apply(api: Api, bearer: str, text: str, path: str = "/apply") -> Any:
    return api.call("POST", path, bearer, content=text)


def test_apply_needs_no_restore_operation_only_the_apis_own_permissions(api: Api) -> None:
    ed = api.user("ed", "role:edit,resource:servers")
    text = manifest(("Server", "alpha", SERVER))
    assert apply(api, ed, text, "/restore").status_code == 403  # restore is an operation
    r = apply(api, ed, text)
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 1
    assert api.ok("GET", "/servers/alpha")["transport"] == "http"
    again = apply(api, ed, text).json()
    assert (again["created"], again["unchanged"]) == (0, 1)


def test_apply_is_all_or_nothing_and_refuses_what_the_api_would(api: Api) -> None:
    ed = api.user("ed", "role:edit,resource:servers")
    before = api.state()
    text = manifest(("Server", "beta", SERVER), ("User", "eve@example.com", {}))
    r = apply(api, ed, text)
    assert r.status_code == 403, r.text
    assert "document 2" in r.json()["detail"]
    assert api.call("GET", "/servers/beta").status_code == 404  # document 1 rolled back
    assert api.state() == before
    denies = api.ok("GET", "/auditevents?outcome=deny&subject=ed")["items"]
    assert any(e["action"] == "apply" and "document 2" in e["detail"]["reason"] for e in denies), (
        denies
    )


def test_unchanged_tells_nothing_to_a_caller_who_may_not_change_it(api: Api) -> None:
    api.ok("POST", "/secrets", json={"name": "prod", "data": {"password": "hunter2"}})
    viewer = api.user("vic", "role:view,resource:secrets")
    right = apply(api, viewer, manifest(("Secret", "prod", {"data": {"password": "hunter2"}})))
    wrong = apply(api, viewer, manifest(("Secret", "prod", {"data": {"password": "guess"}})))
    assert right.status_code == wrong.status_code == 403, (right.text, wrong.text)
    assert right.json()["detail"] == wrong.json()["detail"]


def test_apply_by_an_admin_takes_a_whole_configuration(api: Api) -> None:
    text = manifest(
        ("Server", "gamma", SERVER),
        ("Project", "web", {"servers": ["gamma"]}),
    )
    r = api.call("POST", "/apply?dryRun=true", content=text)
    assert r.status_code == 200 and r.json()["dryRun"] is True, r.text
    assert api.call("GET", "/servers/gamma").status_code == 404  # a dry run changes nothing
    r = api.call("POST", "/apply", content=text)
    assert r.status_code == 200 and r.json()["created"] == 2, r.text
    assert api.ok("GET", "/projects/web")["servers"] == ["gamma"]
