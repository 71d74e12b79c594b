"""The Authorizer facade: token rules, fail-closed behaviour, incremental changes."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from pathlib import Path

import pytest

from authz import Authorizer, TokenGrant
from authz.index import PolicyIndex
from authz.policy import Rule, default_model_path, default_policy_dir


def sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


@pytest.fixture
def authz() -> Authorizer:
    a = Authorizer()
    a.apply(
        added=[
            a.parse_binding("role:edit,resource:servers").to_rule("User:alice"),
            a.parse_binding("role:run,resource:servers,name:github").to_rule("User:alice"),
            Rule("g", ("User:bob", "Group:devs")),
            a.parse_binding("role:view,resource:servers,project:web").to_rule("Group:devs"),
        ]
    )
    return a


def token(
    a: Authorizer, name: str, project: str, creator: str, *bindings: str, **kw: object
) -> str:
    grant = TokenGrant(sha(name), project, creator, name=name, **kw)  # type: ignore[arg-type]
    a.register_token(grant)
    a.apply(added=[a.parse_binding(b).to_rule(grant.subject) for b in bindings])
    return grant.subject


@pytest.mark.parametrize(
    "request_",
    [
        ("alice", "web", "servers", "x", "get"),  # no type prefix
        ("User:alice", "Web", "servers", "x", "get"),  # bad project
        ("User:alice", "web", "widgets", "x", "get"),  # unknown kind
        ("User:alice", "web", "servers", "a,b", "get"),  # comma in name
        ("User:alice", "web", "servers", "x", "GET"),  # bad verb
        ("User:alice", "web", "tools", "notatool", "run"),  # tool without server part
        ("McpToken:xyz", "web", "servers", "x", "get"),  # not a sha256
        ("", "", "", "", ""),
    ],
)
def test_invalid_requests_are_denied_with_a_reason(
    authz: Authorizer, request_: tuple[str, str, str, str, str]
) -> None:
    d = authz.decide(*request_)
    assert not d.allowed
    assert d.reason.startswith("invalid request:")


def test_an_exception_inside_is_a_deny(authz: Authorizer, monkeypatch: pytest.MonkeyPatch) -> None:
    assert authz.decide("User:alice", "web", "servers", "x", "get").allowed

    def boom(*_: object) -> None:
        raise RuntimeError("index corrupted")

    monkeypatch.setattr(PolicyIndex, "match", boom)
    d = authz.decide("User:alice", "web", "servers", "x", "get")
    assert not d.allowed
    assert "internal error" in d.reason


def test_reasons_name_the_deciding_line(authz: Authorizer) -> None:
    d = authz.decide("User:bob", "web", "servers", "x", "get")
    assert d.allowed and d.rule is not None
    assert "User:bob is in Group:devs" in d.reason
    assert "role:view includes get" in d.reason
    d = authz.decide("User:bob", "ops", "servers", "x", "get")
    assert not d.allowed and d.rule is None
    assert d.reason == "no policy line allows User:bob to get servers/x in project ops"


def test_token_acts_only_in_its_project_within_its_bindings(authz: Authorizer) -> None:
    t = token(authz, "ci", "web", "User:alice", "role:view,resource:servers,project:web")
    assert authz.decide(t, "web", "servers", "x", "get").allowed
    assert not authz.decide(t, "web", "servers", "x", "update").allowed  # beyond its binding
    d = authz.decide(t, "ops", "servers", "x", "get")
    assert not d.allowed and "token of project web cannot act in project ops" in d.reason
    assert not authz.decide(t, "", "servers", "x", "get").allowed


def test_continuous_ceiling_demoted_creator_takes_token_power(authz: Authorizer) -> None:
    t = token(authz, "ci", "web", "User:alice", "role:edit,resource:servers,project:web")
    assert authz.decide(t, "web", "servers", "x", "update").allowed
    authz.apply(removed=[authz.parse_binding("role:edit,resource:servers").to_rule("User:alice")])
    d = authz.decide(t, "web", "servers", "x", "update")
    assert not d.allowed
    assert "creator User:alice is not allowed this now" in d.reason


def test_unknown_revoked_and_expired_tokens_are_denied(authz: Authorizer) -> None:
    assert authz.decide(f"McpToken:{sha('nope')}", "web", "servers", "x", "get").reason == (
        "unknown token"
    )
    b = "role:view,resource:servers"
    revoked = token(authz, "r", "web", "User:alice", b, revoked=True)
    assert authz.decide(revoked, "web", "servers", "x", "get").reason == "token is revoked"
    expired = token(authz, "e", "web", "User:alice", b, expires_at=time.time() - 1)
    assert authz.decide(expired, "web", "servers", "x", "get").reason == "token has expired"
    fresh = token(authz, "f", "web", "User:alice", b, expires_at=time.time() + 3600)
    assert authz.decide(fresh, "web", "servers", "x", "get").allowed
    authz.unregister_token(sha("f"))
    assert authz.decide(fresh, "web", "servers", "x", "get").reason == "unknown token"


def test_token_cannot_mint_tokens_even_when_bound_to(authz: Authorizer) -> None:
    authz.apply(added=[authz.parse_binding("role:admin,resource:*").to_rule("User:root")])
    t = token(authz, "adm", "web", "User:root", "role:admin,resource:*,project:web")
    assert authz.decide(t, "web", "servers", "x", "delete").allowed
    d = authz.decide(t, "web", "mcptokens", "", "create")
    assert not d.allowed and "deny.csv" in d.reason


def test_group_membership_change_is_visible_at_once(authz: Authorizer) -> None:
    assert authz.decide("User:bob", "web", "servers", "x", "get").allowed
    authz.apply(removed=[Rule("g", ("User:bob", "Group:devs"))])
    assert not authz.decide("User:bob", "web", "servers", "x", "get").allowed
    authz.apply(
        added=[Rule("g", ("Group:devs", "Group:eng")), Rule("g", ("User:bob", "Group:devs"))]
    )
    authz.apply(added=[authz.parse_binding("role:admin,resource:*").to_rule("Group:eng")])
    assert authz.decide("User:bob", "x", "secrets", "s", "delete").allowed


def test_run_on_a_server_covers_its_tools_and_a_tool_deny_wins(authz: Authorizer) -> None:
    assert authz.decide("User:alice", "p", "tools", "github__create_issue", "run").allowed
    assert not authz.decide("User:alice", "p", "tools", "gitlab__create_issue", "run").allowed
    authz.apply(added=[Rule("p", ("User:alice", "*", "tools", "github__rm", "role:run", "deny"))])
    assert not authz.decide("User:alice", "p", "tools", "github__rm", "run").allowed
    assert authz.decide("User:alice", "p", "tools", "github__create_issue", "run").allowed


def test_explain_lists_closures_and_every_matching_line(authz: Authorizer) -> None:
    authz.apply(added=[Rule("p", ("Group:devs", "web", "servers", "x", "role:view", "deny"))])
    e = authz.explain("User:bob", "web", "servers", "x", "get")
    assert not e.decision.allowed
    assert e.subjects == ("User:bob", "Group:devs")
    assert set(e.acts) >= {"get", "role:view", "role:edit", "role:admin"}
    assert [r.values[5] for r in e.allows] == ["allow"]
    assert [r.values[5] for r in e.denies] == ["deny"]


def test_covers_lists_every_missing_permission(authz: Authorizer) -> None:
    wanted = [authz.parse_binding("role:edit,resource:servers,project:web")]
    assert authz.covers("User:alice", wanted) == []
    missing = authz.covers("User:bob", wanted)
    # issue 13: role:edit includes attach
    assert sorted(m.verb for m in missing) == ["attach", "create", "delete", "update"]
    assert all("in project web" in str(m) for m in missing)
    wide = [authz.parse_binding("role:view,resource:servers")]
    assert {m.verb for m in authz.covers("User:bob", wide)} == {"get", "list"}


def test_covers_refuses_a_wildcard_grant_over_a_holders_deny(authz: Authorizer) -> None:
    authz.apply(added=[Rule("p", ("User:alice", "*", "servers", "prod", "role:edit", "deny"))])
    missing = authz.covers("User:alice", [authz.parse_binding("role:edit,resource:servers")])
    assert missing and all("denied in part by" in m.reason for m in missing)
    ok = authz.covers("User:alice", [authz.parse_binding("role:edit,resource:servers,name:dev")])
    assert ok == []


def test_admins_pass_the_ceiling(authz: Authorizer) -> None:
    authz.apply(added=[Rule("g", ("User:root", "Group:admins"))])
    everything = [authz.parse_binding("role:admin,resource:*"), authz.parse_binding("action:logs")]
    assert authz.covers("User:root", everything) == []


def test_clone_copies_in_project_bindings_only(authz: Authorizer) -> None:
    got = {str(b) for b in authz.clone_bindings("User:bob", "web")}
    assert got == {"role:view,resource:servers,project:web"}
    assert authz.clone_bindings("User:bob", "ops") == []
    got = {str(b) for b in authz.clone_bindings("User:alice", "ops")}
    assert got == {
        "role:edit,resource:servers,project:ops",
        "role:run,resource:servers,name:github,project:ops",
    }


def test_a_changed_model_falls_back_to_the_plain_enforcer(tmp_path: Path) -> None:
    text = default_model_path().read_text()
    # Same meaning, different matcher text (g() last): the index no longer applies.
    changed = text.replace(
        "m = g(r.sub, p.sub) && g2(r.act, p.act) && ", "m = g2(r.act, p.act) && g(r.sub, p.sub) && "
    )
    assert changed != text
    model = tmp_path / "model.conf"
    model.write_text(changed)
    slow = Authorizer(model_path=model)
    fast = Authorizer()
    assert not slow.indexed and fast.indexed
    assert any("[m] m" in n for n in slow.model_notes)
    rules = [
        fast.parse_binding("role:edit,resource:servers,project:web").to_rule("Group:devs"),
        Rule("g", ("User:bob", "Group:devs")),
        Rule("p", ("User:bob", "*", "servers", "prod", "role:edit", "deny")),
    ]
    for a in (slow, fast):
        a.apply(added=rules)
    for req in [
        ("User:bob", "web", "servers", "x", "update"),
        ("User:bob", "web", "servers", "prod", "update"),
        ("User:bob", "ops", "servers", "x", "update"),
        ("User:eve", "web", "servers", "x", "get"),
    ]:
        assert slow.decide(*req).allowed == fast.decide(*req).allowed, req


def test_reload_swaps_in_new_stored_rules(authz: Authorizer) -> None:
    assert authz.decide("User:alice", "", "servers", "x", "update").allowed
    authz.reload(stored=[Rule("p", ("User:carol", "*", "servers", "*", "role:view", "allow"))])
    assert not authz.decide("User:alice", "", "servers", "x", "update").allowed
    assert authz.decide("User:carol", "", "servers", "x", "get").allowed


def test_policy_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "only.csv").write_text("g2, get, role:view\np, User:a, *, *, *, role:view, allow\n")
    monkeypatch.setenv("MCPCTL_POLICY_DIR", str(tmp_path))
    assert default_policy_dir() == tmp_path
    a = Authorizer()
    assert a.decide("User:a", "", "servers", "x", "get").allowed
    assert a.roles() == {"view"}


@pytest.mark.timeout(60)
def test_concurrent_decisions_during_changes_never_fail() -> None:
    a = Authorizer()
    rng = random.Random(7)
    users = [f"User:u{i}" for i in range(50)]
    base = [Rule("g", (u, f"Group:g{i % 5}")) for i, u in enumerate(users)]
    base += [a.parse_binding("role:view,resource:servers").to_rule(f"Group:g{i}") for i in range(5)]
    a.apply(added=base)
    flip = a.parse_binding("role:edit,resource:servers").to_rule("Group:g0")
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                u = rng.choice(users)
                d = a.decide(u, "", "servers", "x", "get")
                assert d.allowed, d.reason  # never disturbed by unrelated changes
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(300):
        a.apply(added=[flip])
        a.apply(added=[Rule("g", ("User:u0", "Group:extra"))])
        a.apply(removed=[flip, Rule("g", ("User:u0", "Group:extra"))])
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert not a.decide("User:u0", "", "servers", "x", "update").allowed
