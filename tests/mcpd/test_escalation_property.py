"""Issue 13's property: for random bindings of a caller, nothing the caller can create,
update, attach or restore lets any subject do what the caller could not.

Each example binds a fresh user with a few bindings drawn from a pool, lets it try every
power-carrying change through the API and through restore, then checks the end state:
each stdio definition that changed was made by a holder of ``exec`` on it, each new
secretRef by a holder of ``use`` on the secret, each new attachment by a holder of
``attach``, and each RbacDefinition it made grants nothing it lacks."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcpd import manifests
from mcpd.runtime import Runtime
from tests.mcpd.conftest import Api

POOL = (
    "role:edit,resource:servers",
    "role:view,resource:servers",
    "role:edit,resource:servers,project:w{n}",
    "role:edit,resource:projects",
    "role:edit,resource:projects,name:w{n}",
    "role:edit,resource:secrets",
    "role:use,resource:secrets,name:s{n}",
    "role:exec,resource:servers,name:a{n}",
    "role:attach,resource:servers,name:b{n},project:w{n}",
    "role:edit,resource:rbac",
    "action:restore",
)
_n = itertools.count()


def _attempts(n: int, me: str) -> list[Any]:
    url = "http://127.0.0.1:9/x"
    ref = {"X-S": {"secretRef": f"s{n}/k"}}
    run = {"command": "sh", "args": ["-c", "id"]}
    docs = [
        ("Server", f"a{n}", {"transport": "stdio", "stdio": run}),
        ("Server", f"e{n}", {"transport": "stdio", "stdio": {"command": "sh"}}),
        ("Server", f"b{n}", {"transport": "http", "http": {"url": url, "headers": ref}}),
        ("Project", f"w{n}", {"servers": [f"a{n}", f"b{n}"]}),
        ("RbacDefinition", f"r{n}", {"subjects": [f"User:{me}"],
                                     "roleBindings": ["role:admin,resource:*"]}),
    ]  # fmt: skip
    return [
        ("PUT", f"/servers/a{n}", {"stdio": run}),
        ("POST", "/servers", {"name": f"e{n}", "transport": "stdio", "stdio": {"command": "sh"}}),
        ("PUT", f"/servers/b{n}", {"http": {"url": url, "headers": ref}}),
        ("POST", "/servers", {"name": f"h{n}", "transport": "http",
                              "http": {"url": url, "headers": ref}}),
        ("PUT", f"/projects/w{n}", {"servers": [f"a{n}", f"b{n}"]}),
        ("POST", "/projects", {"name": f"v{n}", "servers": [f"b{n}"]}),
        ("POST", "/rbac", {"name": f"q{n}", "subjects": [f"User:{me}"],
                           "roleBindings": ["role:exec,resource:servers"]}),
        *[("RESTORE", manifests.dump([manifests.document(*d)]), None) for d in docs],
    ]  # fmt: skip


@pytest.fixture
def world(api: Api) -> Api:
    return api


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(chosen=st.sets(st.sampled_from(range(len(POOL))), max_size=5))
def test_nothing_the_caller_does_grants_more_than_it_holds(world: Api, chosen: set[int]) -> None:
    api, n = world, next(_n)
    api.ok("POST", "/secrets", json={"name": f"s{n}", "data": {"k": "v"}})
    api.ok("POST", "/servers", json={"name": f"a{n}", "transport": "stdio",
                                     "stdio": {"command": "true"}})  # fmt: skip
    api.ok("POST", "/servers", json={"name": f"b{n}", "transport": "http",
                                     "http": {"url": "http://127.0.0.1:9/mcp"}})  # fmt: skip
    api.ok("POST", "/projects", json={"name": f"w{n}", "servers": [f"a{n}"]})
    me = f"p{n}"
    bearer = api.user(me, *sorted(POOL[i].format(n=n) for i in chosen))
    for method, path, body in _attempts(n, me):
        if method == "RESTORE":
            api.call("POST", "/restore", bearer, content=path)
        else:
            api.call(method, path, bearer, json=body)

    rt: Runtime = api.client.app.state.runtime  # type: ignore[attr-defined]

    def may(kind: str, verb: str, name: str, project: str = "") -> bool:
        return rt.authorizer.decide(f"User:{me}", project, kind, name, verb).allowed

    servers = {s["name"]: s for s in api.ok("GET", "/servers?limit=500")["items"]}
    if servers[f"a{n}"]["stdio"]["command"] != "true":
        assert may("servers", "exec", f"a{n}"), "a stdio server changed without exec"
    if f"e{n}" in servers:
        assert may("servers", "exec", f"e{n}"), "a stdio server was created without exec"
    for name in (f"b{n}", f"h{n}"):
        if name in servers and servers[name]["http"]["headers"]:
            assert may("secrets", "use", f"s{n}"), f"{name} references s{n} without use"
    for project in (f"w{n}", f"v{n}"):
        r = api.call("GET", f"/projects/{project}")
        if r.status_code == 200 and f"b{n}" in r.json()["servers"]:
            assert may("servers", "attach", f"b{n}", project), f"b{n} attached to {project}"
    for rbac in (f"q{n}", f"r{n}"):
        r = api.call("GET", f"/rbac/{rbac}")
        if r.status_code == 200:
            wanted = [rt.authorizer.parse_binding(b) for b in r.json()["roleBindings"]]
            # what the definition grants, the caller held before it was made
            assert rt.authorizer.covers(f"User:{me}", wanted) == [], rbac
            assert len(chosen) and "role:edit,resource:rbac" in {POOL[i] for i in chosen}
