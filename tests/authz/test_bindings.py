from __future__ import annotations

import pytest

from authz import Authorizer, BindingError, RoleBinding
from authz.policy import Rule


@pytest.fixture(scope="module")
def authz() -> Authorizer:
    return Authorizer()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("role:edit,resource:servers", RoleBinding("role:edit", "servers", "*", "*")),
        ("role:view,resource:servers,name:github", RoleBinding("role:view", "servers", "github")),
        (
            "role:run,resource:servers,name:github,project:web",
            RoleBinding("role:run", "servers", "github", "web"),
        ),
        (" role:admin , resource:* ", RoleBinding("role:admin", "*", "*", "*")),
        ("project:web,resource:tools,role:run", RoleBinding("role:run", "tools", "*", "web")),
        (
            "role:run,resource:tools,name:github__create_issue",
            RoleBinding("role:run", "tools", "github__create_issue"),
        ),
        (
            "role:run,resource:prompts,name:github__triage",
            RoleBinding("role:run", "prompts", "github__triage"),
        ),
        (
            "role:run,resource:resources,name:fs__file:///notes/a.txt?rev=2&x=%20#top",
            RoleBinding("role:run", "resources", "fs__file:///notes/a.txt?rev=2&x=%20#top"),
        ),
        ("action:logs", RoleBinding("action:logs", "*", "*", "*")),
        ("action:audit,project:ops", RoleBinding("action:audit", "*", "*", "ops")),
    ],
)
def test_parse_valid(authz: Authorizer, text: str, expected: RoleBinding) -> None:
    parsed = authz.parse_binding(text)
    assert parsed == expected
    assert authz.parse_binding(str(parsed)) == parsed  # str() is the canonical form


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "binding is empty"),
        ("role:root,resource:servers", "unknown role `root`"),
        ("role:edit,resource:widgets", "unknown resource kind `widgets`"),
        ("role:edit,resource:servers,resource:users", "key `resource` appears twice"),
        ("role:edit,resource:", "key `resource` has an empty value"),
        ("role:edit,action:logs,resource:servers", "has both `role` and `action`"),
        ("resource:servers", "names neither a role nor an operation"),
        ("role:edit", "has no `resource`"),
        ("action:dance", "unknown operation `dance`"),
        ("action:logs,resource:servers", "gives `resource` with an operation"),
        ("action:logs,name:x", "gives `name` with an operation"),
        ("role:edit,resource:servers,colour:blue", "unknown key `colour`"),
        (
            "role:edit,resource:servers,project:Not_A_Label",
            "project `Not_A_Label` is not a valid name",
        ),
        ("role:edit,resource:servers,name:a b", "name `a b` is not valid"),
        ("role:edit,resource:*,name:foo", "a name needs a kind"),
        ("role:run,resource:tools,name:nounderscore", "tool name `nounderscore` is not valid"),
        ("role:run,resource:prompts,name:plan", "prompt name `plan` is not valid"),
        ("role:run,resource:resources,name:fs__a b", "resource name `fs__a b` is not valid"),
        ("role:run,resource:resources,name:fs__x(1)", "a resource is named by its URI"),
        ("role:edit;resource:servers", "unknown role `edit;resource:servers`"),
        ("role:edit,resource:servers,nokey", "`nokey` in binding"),
    ],
)
def test_parse_errors_are_precise(authz: Authorizer, text: str, message: str) -> None:
    with pytest.raises(BindingError) as err:
        authz.parse_binding(text)
    assert message in str(err.value)


def test_binding_round_trips_through_a_rule(authz: Authorizer) -> None:
    b = authz.parse_binding("role:view,resource:servers,name:github,project:web")
    rule = b.to_rule("User:alice")
    assert rule == Rule("p", ("User:alice", "web", "servers", "github", "role:view", "allow"))
    assert RoleBinding.from_rule(rule) == b
    assert RoleBinding.from_rule(Rule("p", ("User:a", "*", "*", "*", "get", "allow"))) is None
    assert RoleBinding.from_rule(Rule("p", ("User:a", "*", "*", "*", "role:view", "deny"))) is None


def test_a_role_added_in_policy_is_bindable_without_code(tmp_path: object) -> None:
    from pathlib import Path

    from authz.policy import default_policy_dir

    assert isinstance(tmp_path, Path)
    for f in default_policy_dir().glob("*.csv"):
        (tmp_path / f.name).write_text(f.read_text())
    (tmp_path / "auditor.csv").write_text("g2, get, role:auditor\ng2, audit, role:auditor\n")
    a = Authorizer(policy_dir=tmp_path)
    b = a.parse_binding("role:auditor,resource:auditevents")
    a.apply(added=[b.to_rule("User:sec")])
    assert a.decide("User:sec", "", "auditevents", "", "audit").allowed
    assert a.decide("User:sec", "", "auditevents", "x", "get").allowed
    assert not a.decide("User:sec", "", "auditevents", "x", "delete").allowed


@pytest.mark.parametrize("use_index", [True, False])
def test_a_resource_binding_is_a_policy_line_both_engines_decide_on(use_index: bool) -> None:
    """A URI's characters survive the binding, the stored ``p`` line and each engine (the
    index, and the plain Casbin enforcer)."""
    uri = "fs__file:///notes/a.txt?rev=2&x=%20#top"
    binding = Authorizer().parse_binding(f"role:run,resource:resources,name:{uri}")
    b = binding
    line = Rule("p", ("User:u", b.project, b.kind, b.name, b.grant, "allow"))
    a = Authorizer(stored=[line], use_index=use_index)
    assert a.indexed is use_index
    assert a.decide("User:u", "p", "resources", uri, "run").allowed
    assert not a.decide("User:u", "p", "resources", "fs__file:///notes/b.txt", "run").allowed
    assert not a.decide("User:u", "p", "prompts", uri, "run").allowed
    assert not a.decide("User:u", "p", "tools", "fs__read", "run").allowed
