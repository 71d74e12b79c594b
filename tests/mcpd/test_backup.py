"""Backup and restore: round trip, idempotence, secrets, dry run, all-or-nothing, ceilings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from mcpd import manifests
from mcpd.app import create_app
from mcpd.errors import Invalid
from mcpd.policystore import load_stored_rules
from mcpd.settings import Settings
from tests.mcpd.conftest import ADMIN, PASSWORD, Api

KINDS = ("users", "groups", "serviceaccounts", "secrets", "servers", "projects", "rbac")
META = {"createdAt", "updatedAt", "createdBy", "version"}


@pytest.fixture
def other(tmp_path: Path) -> Iterator[Api]:
    """A second, empty mcpd (its own SQLite file and secrets key) to restore into."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'other.db'}",
        bootstrap_admin=ADMIN,
        bootstrap_password=PASSWORD,  # type: ignore[arg-type]
        secrets_key=Fernet.generate_key().decode(),  # type: ignore[arg-type]
        secrets_key_file=tmp_path / "other.key",
    )
    with TestClient(create_app(settings)) as client:
        r = client.post("/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD})
        assert r.status_code == 200, r.text
        yield Api(client, r.json()["token"])


def _world(api: Api) -> None:
    """Something of every kind, with values YAML likes to misread (on, yes, dates)."""
    api.ok(
        "POST",
        "/users",
        json={"name": "alice@example.com", "displayName": "Alice", "password": PASSWORD},
    )
    api.ok("POST", "/users", json={"name": "bob", "disabled": True})
    api.ok("POST", "/users", json={"name": "carol", "password": PASSWORD})
    api.ok("POST", "/groups", json={"name": "devs", "members": ["carol", "alice@example.com"]})
    api.ok("POST", "/groups", json={"name": "nobody-yet"})
    api.ok(
        "POST", "/secrets", json={"name": "github", "data": {"token": "ghp-SECRET-1", "user": "on"}}
    )
    api.ok("POST", "/secrets", json={"name": "db", "data": {"password": "pg-SECRET-2"}})
    api.ok(
        "POST",
        "/servers",
        json={
            "name": "gh",
            "description": "GitHub",
            "transport": "stdio",
            "stdio": {
                "command": "gh-mcp",
                "args": ["--read-only", "yes"],
                "env": {"GH_TOKEN": {"secretRef": "github/token"}, "MODE": "on"},
            },
        },
    )
    api.ok(
        "POST",
        "/servers",
        json={
            "name": "pg",
            "transport": "http",
            "http": {
                "url": "https://pg.example/mcp",
                "headers": {"Authorization": {"secretRef": "db/password"}, "X-Day": "2024-01-01"},
            },
            "healthCheck": {"tool": "ping", "intervalSeconds": 15, "timeoutSeconds": 3},
        },
    )
    api.ok(
        "POST",
        "/projects",
        json={
            "name": "web",
            "description": "the web team",
            "servers": ["pg", "gh"],
            "proxyModel": "paginate",
        },
    )
    api.ok("POST", "/projects", json={"name": "ops"})
    api.ok(
        "POST",
        "/rbac",
        json={
            "name": "devs-web",
            "subjects": ["Group:devs"],
            "roleBindings": [
                "role:run,resource:servers,project:web",
                "role:view,resource:projects,name:web",
            ],
        },
    )
    api.ok(
        "POST",
        "/rbac",
        json={
            "name": "carol-extra",
            "subjects": ["User:carol"],
            "roleBindings": ["action:logs", "role:view,resource:servers"],
        },
    )
    api.ok("PUT", "/servers/gh", json={"description": "GitHub (read-only)"})  # version 2
    token = api.ok(
        "POST",
        "/mcptokens",
        json={"name": "ci", "project": "web", "bindings": ["role:view,resource:servers"]},
    )
    api.tokens["ci"] = token["token"]


def _snapshot(api: Api) -> dict[str, list[dict[str, Any]]]:
    """What the API shows of each kind, without the fields a restore cannot carry."""
    out = {}
    for kind in KINDS:
        items = api.ok("GET", f"/{kind}?limit=500")["items"]
        out[kind] = [
            {k: v for k, v in i.items() if k not in META} for i in items if not i.get("token")
        ]
    return out


def _backup(api: Api, bearer: str | None = None, *, secrets: bool = False) -> str:
    r = api.call("GET", "/backup" + ("?secrets=true" if secrets else ""), bearer)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/yaml")
    assert r.headers["cache-control"] == "no-store"
    return r.text


def _restore(
    api: Api, text: str, bearer: str | None = None, *, dry_run: bool = False, status: int = 200
) -> dict[str, Any]:
    r = api.call("POST", "/restore" + ("?dryRun=true" if dry_run else ""), bearer, content=text)
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    return body


def _outcomes(result: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(i["kind"], i["name"]): i["outcome"] for i in result["items"]}


def _body(text: str) -> str:
    return "".join(line + "\n" for line in text.splitlines() if not line.startswith("#"))


def _manifest(*docs: tuple[str, str, dict[str, Any]]) -> str:
    return manifests.dump(manifests.document(k, n, s) for k, n, s in docs)


# -- the format ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Widget\nmetadata: {name: x}\n", "document 1: kind `Widget` is unknown"),
        ("metadata: {name: x}\n", "document 1: `kind` is missing"),
        ("kind: Server\nspec: {}\n", "document 1 (Server): `metadata` must be a mapping"),
        ("kind: User\nmetadata: {name: ''}\n", "document 1 (User): `metadata.name` is missing"),
        (
            "kind: User\nmetadata: {name: a, labels: {}}\n",
            "document 1 (User): unknown metadata key(s) labels",
        ),
        (
            "---\nkind: User\nmetadata: {name: a}\n---\nkind: Project\nmetadata: {name: p}\n"
            "spec: {servers: [a], color: red}\n",
            "document 2 (Project `p`): unknown spec key(s) color; a Project has description",
        ),
        (
            "kind: User\nmetadata: {name: a}\nspec: {password: hunter2hunter2}\n",
            "unknown spec key(s) password",
        ),
        (
            "kind: Project\nmetadata: {name: p}\nspec: {proxyModel: magic}\n",
            "document 1 (Project `p`): spec.proxyModel: Input should be",
        ),
        (
            "kind: Server\nmetadata: {name: Bad_Name}\nspec: {transport: stdio, stdio: "
            "{command: x}}\n",
            "document 1 (Server `Bad_Name`): metadata.name: must be 1-63 lowercase",
        ),
        (
            "kind: Server\nmetadata: {name: s}\nspec: {transport: http}\n",
            "spec: an http server needs `http`",
        ),
        (
            "kind: Secret\nmetadata: {name: s}\nspec: {data: {a: b}, keys: [a]}\n",
            "give either `data` or `keys`",
        ),
        ("kind: Secret\nmetadata: {name: s}\nspec: {keys: [a, a]}\n", "lists a key twice"),
        ("kind: Secret\nmetadata: {name: s}\nspec: {keys: ['a b']}\n", "not a valid key"),
        ("apiVersion: v2\nkind: User\nmetadata: {name: a}\n", "apiVersion `v2` is unknown"),
        ("kind: User\nkind: Group\nmetadata: {name: a}\n", "key `kind` appears twice"),
        ("kind: [\n", "not valid YAML"),
        ("- a\n- b\n", "document 1: expected a mapping"),
        (
            "kind: User\nmetadata: {name: a}\n---\n# nothing\n---\n"
            "kind: User\nmetadata: {name: a}\n",
            "document 3 (User `a`): the same object is document 1",
        ),
    ],
)
def test_manifest_errors_name_the_document_and_the_problem(text: str, message: str) -> None:
    with pytest.raises(Invalid) as err:
        manifests.parse(text)
    assert message in err.value.detail


def test_manifest_round_trips_and_is_sorted_into_dependency_order() -> None:
    text = _manifest(
        ("RbacDefinition", "r", {"subjects": ["User:a"], "roleBindings": ["action:logs"]}),
        ("Project", "p", {"servers": ["s"], "proxyModel": "paginate"}),
        ("Server", "s", {"transport": "http", "http": {"url": "https://x/mcp"}}),
        ("Secret", "k", {"data": {"on": "yes", "date": "2024-01-01"}}),
        ("ServiceAccount", "bot", {"description": "a machine"}),
        ("Group", "g", {"members": ["a"]}),
        ("User", "a", {"displayName": "A", "disabled": False}),
    )
    docs = manifests.parse(text)
    assert [d.kind for d in docs] == list(manifests.ORDER)
    secret = next(d for d in docs if d.kind == "Secret").body
    assert secret.data == {"on": "yes", "date": "2024-01-01"}  # type: ignore[union-attr]
    assert [d.index for d in docs] == [7, 6, 5, 4, 3, 2, 1]


# -- round trip and idempotence ------------------------------------------------------------


def test_round_trip_into_a_fresh_mcpd(api: Api, other: Api) -> None:
    _world(api)
    text = _backup(api, secrets=True)
    assert "mcptoken-ci" not in text  # tokens and their bindings are not exported
    assert "kind: McpToken" not in text
    assert "$argon2" not in text  # nor password hashes
    result = _restore(other, text)
    outcomes = _outcomes(result)
    assert outcomes[("User", ADMIN)] == outcomes[("Group", "admins")] == "unchanged"
    assert outcomes[("Server", "gh")] == outcomes[("RbacDefinition", "devs-web")] == "created"
    assert result["created"] == len(result["items"]) - 2
    assert _snapshot(other) == _snapshot(api)
    assert _body(_backup(other, secrets=True)) == _body(text)  # secret values came across
    assert other.call("GET", "/mcptokens/ci").status_code == 404
    # restored users have no password until one is set; then their RBAC holds at once
    assert (
        other.client.post(
            "/api/v1/auth/login", json={"username": "carol", "password": PASSWORD}
        ).status_code
        == 401
    )
    other.ok("PUT", "/users/carol", json={"password": PASSWORD})
    carol = other.login("carol")
    assert other.call("GET", "/servers", carol).status_code == 200  # carol-extra
    assert other.call("GET", "/projects/web", carol).status_code == 200  # devs-web via devs
    assert other.call("DELETE", "/servers/gh", carol).status_code == 403


def test_restoring_twice_changes_nothing_the_second_time(api: Api, other: Api) -> None:
    _world(api)
    text = _backup(api, secrets=True)
    assert set(_outcomes(_restore(api, text)).values()) == {"unchanged"}  # into itself
    first = _restore(other, text)
    second = _restore(other, text)
    assert second["created"] == second["updated"] == 0
    assert second["unchanged"] == len(first["items"])
    assert [i["version"] for i in second["items"]] == [i["version"] for i in first["items"]]
    assert set(_outcomes(_restore(other, _backup(api))).values()) == {"unchanged"}


def test_restore_updates_what_differs_bumps_versions_and_audits_each_change(api: Api) -> None:
    _world(api)
    before = _snapshot(api)
    text = _backup(api, secrets=True)
    alice = api.login("alice@example.com")
    assert api.call("GET", "/projects/web", alice).status_code == 200
    api.ok("PUT", "/users/carol", json={"displayName": "C."})
    api.ok("PUT", "/groups/devs", json={"members": ["carol"]})
    api.ok("PUT", "/secrets/db", json={"data": {"password": "rotated"}})
    api.ok("PUT", "/servers/pg", json={"description": "changed"})
    api.ok("PUT", "/projects/web", json={"servers": ["gh"], "proxyModel": "passthrough"})
    api.ok(
        "PUT",
        "/rbac/carol-extra",
        json={"subjects": ["User:carol"], "roleBindings": ["action:logs"]},
    )
    assert api.call("GET", "/projects/web", alice).status_code == 404
    versions = {
        k: {i["name"]: i["version"] for i in api.ok("GET", f"/{k}")["items"]} for k in KINDS
    }
    r = api.client.post(
        "/api/v1/restore", content=text, headers={**api.h(), "X-Request-Id": "restore-1"}
    )
    assert r.status_code == 200, r.text
    updated = {(i["kind"], i["name"]): i for i in r.json()["items"] if i["outcome"] == "updated"}
    assert set(updated) == {
        ("User", "carol"),
        ("Group", "devs"),
        ("Secret", "db"),
        ("Server", "pg"),
        ("Project", "web"),
        ("RbacDefinition", "carol-extra"),
    }
    assert updated[("Server", "pg")]["fields"] == ["description"]
    assert updated[("Project", "web")]["fields"] == ["servers", "proxyModel"]
    kind_of = dict(zip(manifests.ORDER, KINDS, strict=True))
    for (kind, name), item in updated.items():
        assert item["version"] == versions[kind_of[kind]][name] + 1
    assert r.json()["created"] == 0
    assert _snapshot(api) == before
    assert "pg-SECRET-2" in _backup(api, secrets=True)
    # the restored membership holds at once
    assert api.call("GET", "/projects/web", alice).status_code == 200
    events = [e for e in api.ok("GET", "/auditevents?limit=1000")["items"]]
    mine = [e for e in events if e["requestId"] == "restore-1"]
    assert sorted((e["action"], e["kind"], e["name"]) for e in mine) == sorted(
        [("update", kind_of[k], n) for k, n in updated] + [("restore", "*", "")]
    )
    assert all(e["outcome"] == "allow" and e["subject"] == ADMIN for e in mine)
    assert "rotated" not in str(mine) and "pg-SECRET-2" not in str(mine)


# -- secrets -------------------------------------------------------------------------------


def test_secret_values_only_when_asked_and_a_keys_only_restore_keeps_values(
    api: Api, other: Api
) -> None:
    _world(api)
    plain = _backup(api)
    for value in ("ghp-SECRET-1", "pg-SECRET-2"):
        assert value not in plain
    assert "secret values are not included" in plain
    docs = {(d.kind, d.name): d for d in manifests.parse(plain)}
    assert docs[("Secret", "github")].body == manifests.SecretKeys("github", ["token", "user"])
    full = _backup(api, secrets=True)
    assert "ghp-SECRET-1" in full
    assert "WARNING: this file holds secret values in plain text" in full
    backups = [
        e for e in api.ok("GET", "/auditevents?action=backup")["items"] if e["outcome"] == "allow"
    ]
    assert [e["detail"]["secrets"] for e in backups] == [True, False]
    # restoring key names only never overwrites a stored value
    api.ok("PUT", "/secrets/github", json={"data": {"token": "rotated", "user": "on"}})
    result = _restore(api, plain)
    assert _outcomes(result)[("Secret", "github")] == "unchanged"
    assert "rotated" in _backup(api, secrets=True)
    # ...and cannot create a secret it has no values for: nothing is restored
    before = _snapshot(other)
    r = _restore(other, plain, status=422)
    assert r["kind"] == "Secret"
    assert "has no values for this secret" in r["detail"]
    assert "?secrets=true" in r["detail"]
    assert _snapshot(other) == before
    # nor one whose stored keys differ
    api.ok("PUT", "/secrets/db", json={"data": {"password": "x", "extra": "y"}})
    r = _restore(api, plain, status=422)
    assert "document" in r
    assert "lists keys password without values" in r["detail"]


# -- dry run and all-or-nothing ------------------------------------------------------------


def _policy(api: Api) -> list[Any]:
    rt = api.client.app.state.runtime  # type: ignore[attr-defined]
    return sorted(str(r) for r in load_stored_rules(rt.engine))


def test_dry_run_reports_and_changes_nothing(api: Api, other: Api) -> None:
    _world(api)
    text = _backup(api, secrets=True)
    before, rules, audit = _snapshot(other), _policy(other), other.ok("GET", "/auditevents")
    result = _restore(other, text, dry_run=True)
    assert result["dryRun"] is True
    assert _outcomes(result)[("RbacDefinition", "devs-web")] == "created"
    assert result["created"] == len(result["items"]) - 2
    assert _snapshot(other) == before
    assert _policy(other) == rules
    assert other.ok("GET", "/auditevents") == audit
    rt = other.client.app.state.runtime  # type: ignore[attr-defined]
    assert not rt.authorizer.decide("User:carol", "", "servers", "gh", "get").allowed
    # a dry run of an update reports it, and leaves the version
    api.ok("PUT", "/projects/ops", json={"description": "changed"})
    dry = _restore(api, text, dry_run=True)
    (item,) = [i for i in dry["items"] if i["outcome"] != "unchanged"]
    assert (item["name"], item["version"]) == ("ops", 3)
    assert api.ok("GET", "/projects/ops")["version"] == 2


def test_one_bad_document_changes_nothing(api: Api) -> None:
    rt = api.client.app.state.runtime  # type: ignore[attr-defined]
    before, rules = _snapshot(api), _policy(api)
    good: list[tuple[str, str, dict[str, Any]]] = [
        ("User", "dave", {"displayName": "Dave"}),
        ("Group", "team", {"members": ["dave"]}),
        ("Secret", "s", {"data": {"k": "v"}}),
        ("Server", "srv", {"transport": "http", "http": {"url": "https://x/mcp"}}),
        ("Project", "proj", {"servers": ["srv"]}),
        (
            "RbacDefinition",
            "team-view",
            {"subjects": ["Group:team"], "roleBindings": ["action:logs"]},
        ),
    ]
    # fails on import, after every other object was written in the transaction
    bad_binding = (
        "RbacDefinition",
        "zz",
        {"subjects": ["User:dave"], "roleBindings": ["role:nope,resource:servers"]},
    )
    r = _restore(api, _manifest(*good, bad_binding), status=422)
    assert r["detail"].startswith("document 7 (RbacDefinition `zz`): ")
    assert "unknown role `nope`" in r["detail"]
    assert (r["document"], r["kind"], r["name"]) == (7, "RbacDefinition", "zz")
    # fails mid-way on a reference
    bad_ref = ("Project", "p2", {"servers": ["missing"]})
    r = _restore(api, _manifest(*good, bad_ref), status=422)
    assert "document 7 (Project `p2`): servers: unknown server(s) `missing`" in r["detail"]
    # fails on parsing
    r = _restore(
        api, _manifest(*good) + "---\nkind: User\nmetadata: {name: x}\nspec: {age: 3}\n", status=422
    )
    assert "document 7 (User `x`): unknown spec key(s) age" in r["detail"]
    assert _snapshot(api) == before
    assert _policy(api) == rules
    assert not rt.authorizer.decide("User:dave", "", "*", "", "logs").allowed
    assert not [
        e for e in api.ok("GET", "/auditevents?limit=1000")["items"] if e["action"] == "restore"
    ]
    assert (
        _restore(api, "# nothing here\n", status=422)["detail"] == "the manifest holds no documents"
    )


def test_transport_change_and_token_owned_rbac_are_refused(api: Api) -> None:
    _world(api)
    manifest = _manifest(("Server", "gh", {"transport": "http", "http": {"url": "https://x/mcp"}}))
    r = _restore(api, manifest, status=422)
    assert "a transport cannot change" in r["detail"]
    manifest = _manifest(
        (
            "RbacDefinition",
            "mcptoken-ci",
            {"subjects": ["User:bob"], "roleBindings": ["action:logs"]},
        )
    )
    r = _restore(api, manifest, status=422)  # the name is reserved for token definitions
    assert "`mcptoken-` names are reserved" in r["detail"]
    manifest = _manifest(
        (
            "RbacDefinition",
            "tok",
            {"subjects": [f"McpToken:{'a' * 64}"], "roleBindings": ["action:logs"]},
        )
    )
    assert "bind a token" in _restore(api, manifest, status=422)["detail"]
    # a secret losing a key a server still uses
    manifest = _manifest(("Secret", "github", {"data": {"user": "on"}}))
    r = _restore(api, manifest, status=422)
    assert "server `gh` would break: secretRef `github/token`" in r["detail"]
    assert "token" in api.ok("GET", "/secrets/github")["data"]


# -- authorization -------------------------------------------------------------------------


def test_backup_and_restore_need_their_operations(api: Api) -> None:
    viewer = api.user("viewer", "role:view,resource:*")
    r = api.call("GET", "/backup", viewer)
    assert r.status_code == 403
    assert "may not backup" in r.json()["detail"]
    r = api.call("POST", "/restore", viewer, content=_manifest(("User", "x", {})))
    assert r.status_code == 403
    assert api.call("GET", "/users/x").status_code == 404
    denies = api.ok("GET", "/auditevents?outcome=deny&subject=viewer")["items"]
    assert {e["action"] for e in denies} == {"backup", "restore"}
    backer = api.user("backer", "action:backup")
    assert api.call("GET", "/backup", backer).status_code == 200
    assert (
        api.call("POST", "/restore", backer, content=_manifest(("User", "x", {}))).status_code
        == 403
    )


def test_restore_cannot_grant_what_the_caller_lacks(api: Api) -> None:
    # issue 13: restore needs each object's own permission too; here rita has those, and
    # the ceiling is what refuses
    rita = api.user(
        "rita",
        "action:restore",
        "role:edit,resource:users",
        "role:edit,resource:groups",
        "role:edit,resource:rbac",
    )
    rt = api.client.app.state.runtime  # type: ignore[attr-defined]
    before, rules = _snapshot(api), _policy(api)
    pwn = _manifest(
        ("User", "sock", {}),
        (
            "RbacDefinition",
            "pwn",
            {"subjects": ["User:rita"], "roleBindings": ["role:admin,resource:*"]},
        ),
    )
    r = _restore(api, pwn, rita, status=403)
    assert r["detail"].startswith("document 2 (RbacDefinition `pwn`): rita cannot grant")
    assert {m["verb"] for m in r["missing"]} >= {"create", "delete", "run", "backup"}
    assert _restore(api, pwn, rita, dry_run=True, status=403)["name"] == "pwn"
    # nor by joining a group that holds more
    join = _manifest(("Group", "admins", {"members": [ADMIN, "rita"]}))
    r = _restore(api, join, rita, status=403)
    assert "cannot grant permissions it does not hold" in r["detail"]
    assert _snapshot(api) == before
    assert _policy(api) == rules
    assert not rt.authorizer.decide("User:rita", "", "servers", "x", "delete").allowed
    denies = api.ok("GET", "/auditevents?subject=rita&action=restore&outcome=deny")["items"]
    assert [e["detail"]["dryRun"] for e in denies] == [False, True, False]
    assert "cannot grant permissions it does not hold" in denies[0]["detail"]["reason"]
    # what it holds, it may grant; and the admin may restore what rita could not
    share = _manifest(
        ("User", "sam", {}),
        (
            "RbacDefinition",
            "sam-restore",
            {"subjects": ["User:sam"], "roleBindings": ["action:restore"]},
        ),
    )
    assert _outcomes(_restore(api, share, rita))[("RbacDefinition", "sam-restore")] == "created"
    assert rt.authorizer.decide("User:sam", "", "*", "", "restore").allowed
    assert _restore(api, pwn)["created"] == 2


def test_restored_rbac_takes_effect_at_once(api: Api) -> None:
    bob = api.user("bob")
    api.ok(
        "POST",
        "/servers",
        json={"name": "s1", "transport": "http", "http": {"url": "https://x/mcp"}},
    )
    assert api.call("GET", "/servers", bob).status_code == 403
    manifest = _manifest(
        ("Group", "readers", {"members": ["bob"]}),
        (
            "RbacDefinition",
            "readers",
            {"subjects": ["Group:readers"], "roleBindings": ["role:view,resource:servers"]},
        ),
    )
    _restore(api, manifest)
    assert api.call("GET", "/servers", bob).status_code == 200
    assert api.call("DELETE", "/servers/s1", bob).status_code == 403
    _restore(api, _manifest(("Group", "readers", {"members": []})))
    assert api.call("GET", "/servers", bob).status_code == 403
