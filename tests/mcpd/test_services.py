"""The unit of work (mcpd.services.work): authorize -> write -> audit -> commit -> publish."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from authz import Rule
from mcpd.api.route_table import ROUTES, Guard
from mcpd.errors import Forbidden
from mcpd.models import AuditEvent, Group
from mcpd.principal import Principal
from mcpd.runtime import Runtime
from mcpd.services.work import Caller, Work, unit_of_work
from tests.mcpd.conftest import ADMIN, Api

ADMIN_CALLER = Caller(Principal(f"User:{ADMIN}", user=ADMIN), "rid-1")


def _rt(api: Api) -> Runtime:
    rt: Runtime = api.client.app.state.runtime  # type: ignore[attr-defined]
    return rt


def test_every_change_through_the_api_was_decided_by_its_route_guard(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each mutation route's unit of work is the (kind, action) its guard already asked,
    so the service does not ask again - and a mismatch would ask, never skip."""
    units: list[tuple[tuple[str, str] | None, str, str]] = []
    real = Work.authorize

    def spy(self: Work, kind: str, action: str, name: str = "", project: str = "") -> None:
        units.append((self.caller.guarded, kind, action))
        real(self, kind, action, name, project)

    monkeypatch.setattr(Work, "authorize", spy)
    api.ok("POST", "/users", json={"name": "ann"})
    api.ok("PUT", "/users/ann", json={"displayName": "Ann"})
    api.ok("POST", "/groups", json={"name": "devs", "members": ["ann"]})
    api.ok("PUT", "/groups/devs", json={"members": []})
    api.ok("POST", "/secrets", json={"name": "gh", "data": {"token": "x"}})
    api.ok("PUT", "/secrets/gh", json={"data": {"token": "y"}})
    server = {"name": "time", "transport": "stdio", "stdio": {"command": "true"}}
    api.ok("POST", "/servers", json=server)
    api.ok("PUT", "/servers/time", json={"description": "d"})
    api.ok("POST", "/projects", json={"name": "web", "servers": ["time"]})
    api.ok("PUT", "/projects/web", json={"description": "d"})
    binding = "role:view,resource:servers"
    api.ok("POST", "/rbac", json={"name": "r", "subjects": ["User:ann"], "roleBindings": [binding]})
    api.ok("PUT", "/rbac/r", json={"subjects": ["Group:devs"], "roleBindings": [binding]})
    api.ok("POST", "/mcptokens", json={"name": "t1", "project": "web", "bindings": [binding]})
    api.ok("POST", "/mcptokens/t1/revoke")
    api.ok("DELETE", "/mcptokens/t1")
    api.ok("POST", "/serviceaccounts", json={"name": "bot"})
    api.ok("PUT", "/serviceaccounts/bot", json={"description": "d"})
    second = api.ok("POST", "/serviceaccounts/bot/tokens", json={})["tokenPrefix"]
    api.ok("POST", f"/serviceaccounts/bot/tokens/{second}/revoke")
    text = api.call("GET", "/backup").text
    api.ok("POST", "/restore", content=text)
    paths = ("/rbac/r", "/projects/web", "/servers/time", "/secrets/gh", "/groups/devs")
    for path in (*paths, "/serviceaccounts/bot"):
        api.ok("DELETE", path)
    api.ok("DELETE", "/users/ann")

    assert units, "no unit of work ran"
    # restore (guarded as the operation) also asks each document's own permission under
    # the caller, as the API would (issue 13): those asks are the enforcer's, not the guard's
    per_document = [u for u in units if u[0] == ("*", "restore") and u[1:] != ("*", "restore")]
    assert per_document, "restore asked nothing of its documents"
    direct = [u for u in units if u not in per_document]
    assert all(guarded == (kind, action) for guarded, kind, action in direct), direct
    mutations = {
        (g.kind, g.action)
        for (method, _), g in ROUTES.items()
        if isinstance(g, Guard) and method != "GET" and g.action not in ("run", "proxy")
    }
    assert mutations | {("*", "backup")} == {(kind, action) for _, kind, action in direct}


def test_a_unit_without_a_route_guard_asks_the_enforcer(api: Api) -> None:
    rt = _rt(api)
    nobody = Caller(Principal("User:nobody", user="nobody"))
    with rt.sessions() as db:
        with (
            pytest.raises(Forbidden, match=r"^nobody may not create servers: "),
            unit_of_work(db=db, rt=rt, caller=nobody, kind="servers", action="create"),
        ):
            pytest.fail("the block ran")
        admin = Caller(ADMIN_CALLER.principal)  # no guard ran, and the admin may
        with unit_of_work(db=db, rt=rt, caller=admin, kind="servers", action="create") as work:
            work.audit(name="x")
        assert db.scalars(select(AuditEvent).where(AuditEvent.name == "x")).one()


def _unit_with_everything(
    db: Any, rt: Runtime, steps: list[str], *, dry_run: bool = False, fail: bool = False
) -> None:
    with unit_of_work(
        db=db, rt=rt, caller=ADMIN_CALLER, kind="groups", action="create", dry_run=dry_run
    ) as work:
        db.add(Group(name="g1"))
        work.policy.replace(db, "group/g1", [Rule("g", ("User:ann", "Group:g1"))])
        work.audit(name="g1")
        work.after_commit(lambda: steps.append("then"))
        work.after_commit(lambda: steps.append("first"), before_policy=True)
        if fail:
            raise RuntimeError("boom")


def _stored(api: Api) -> tuple[bool, bool]:
    rt = _rt(api)
    with rt.sessions() as db:
        group = db.scalars(select(Group).where(Group.name == "g1")).first()
    return group is not None, "Group:g1" in rt.authorizer.index.subjects_of("User:ann")


def test_a_unit_commits_then_publishes_in_order(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    rt, steps = _rt(api), []
    real = rt.authorizer.apply

    def apply(*args: Any, **kw: Any) -> None:
        steps.append("policy")
        real(*args, **kw)

    monkeypatch.setattr(rt.authorizer, "apply", apply)
    with rt.sessions() as db:
        _unit_with_everything(db, rt, steps)
        event = db.scalars(select(AuditEvent).where(AuditEvent.name == "g1")).one()
    assert (event.action, event.kind, event.request_id) == ("create", "groups", "rid-1")
    assert steps == ["first", "policy", "then"]
    assert _stored(api) == (True, True)


@pytest.mark.parametrize("how", ["raises", "dry run"])
def test_a_unit_that_raises_or_is_a_dry_run_writes_and_publishes_nothing(
    api: Api, how: str
) -> None:
    rt, steps = _rt(api), []
    with rt.sessions() as db:
        if how == "raises":
            with pytest.raises(RuntimeError):
                _unit_with_everything(db, rt, steps, fail=True)
            db.rollback()  # as the request's session does when it closes
        else:
            _unit_with_everything(db, rt, steps, dry_run=True)
    assert steps == []
    assert _stored(api) == (False, False)
