"""Hypothesis properties of the token rules, clone mode, deny and the creator ceiling."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authz import Authorizer, RoleBinding, TokenGrant
from authz.policy import Rule, default_policy_dir

USERS = ["User:a", "User:b"]
GROUPS = ["Group:g1", "Group:g2"]
PROJECTS = ["p1", "p2"]
KINDS = ["servers", "secrets", "projects", "tools"]
NAMES = {
    "servers": ["s1", "s2"],
    "secrets": ["k1"],
    "projects": ["p1"],
    "tools": ["s1__t", "s2__t"],
}
VERBS = ["get", "list", "create", "update", "delete", "run", "logs", "audit"]
ROLES = ["role:view", "role:edit", "role:run", "role:admin"]
OPS = ["action:logs", "action:audit"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def roles_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped role and operation definitions, without the shipped bindings and denies."""
    d = tmp_path_factory.mktemp("policies")
    for name in ("roles.csv", "operations.csv"):
        (d / name).write_text((default_policy_dir() / name).read_text())
    return d


@st.composite
def bindings(draw: st.DrawFn) -> RoleBinding:
    project = draw(st.sampled_from(["*", *PROJECTS]))
    if draw(st.booleans()) and draw(st.booleans()):
        return RoleBinding(draw(st.sampled_from(OPS)), "*", "*", project)
    kind = draw(st.sampled_from(["*", *KINDS]))
    name = "*" if kind == "*" else draw(st.sampled_from(["*", *NAMES[kind]]))
    return RoleBinding(draw(st.sampled_from(ROLES)), kind, name, project)


@st.composite
def policies(draw: st.DrawFn, denies: bool = True) -> list[Rule]:
    rules = [
        Rule("g", (draw(st.sampled_from(USERS + GROUPS)), g))
        for g in draw(st.lists(st.sampled_from(GROUPS), max_size=3))
    ]
    for _ in range(draw(st.integers(0, 8))):
        sub = draw(st.sampled_from(USERS + GROUPS))
        rule = draw(bindings()).to_rule(sub)
        if denies and draw(st.integers(0, 4)) == 0:
            rule = Rule("p", (*rule.values[:5], "deny"))
        rules.append(rule)
    return rules


def all_requests(projects: list[str]) -> list[tuple[str, str, str, str]]:
    return [
        (proj, kind, name, verb)
        for proj in projects
        for kind in KINDS
        for name in ["", *NAMES[kind]]
        for verb in VERBS
    ]


def make_token(a: Authorizer, project: str, creator: str, grants: list[RoleBinding]) -> str:
    grant = TokenGrant(hashlib.sha256(b"t").hexdigest(), project, creator, name="t")
    a.register_token(grant)
    a.apply(added=[b.in_project(project).to_rule(grant.subject) for b in grants])
    return grant.subject


@SETTINGS
@given(
    rules=policies(),
    token_grants=st.lists(bindings(), max_size=4),
    project=st.sampled_from(PROJECTS),
    creator=st.sampled_from(USERS),
)
def test_a_token_never_exceeds_its_creator(
    rules: list[Rule], token_grants: list[RoleBinding], project: str, creator: str
) -> None:
    a = Authorizer(stored=rules)
    t = make_token(a, project, creator, token_grants)  # no create-time ceiling applied
    for proj, kind, name, verb in all_requests(["", *PROJECTS]):
        if a.decide(t, proj, kind, name, verb).allowed:
            assert proj == project
            assert a.decide(creator, proj, kind, name, verb).allowed, (proj, kind, name, verb)


@SETTINGS
@given(
    rules=policies(denies=False), project=st.sampled_from(PROJECTS), creator=st.sampled_from(USERS)
)
def test_clone_grants_exactly_the_creators_in_project_bindings(
    roles_only: Path, rules: list[Rule], project: str, creator: str
) -> None:
    a = Authorizer(policy_dir=roles_only, stored=rules)
    t = make_token(a, project, creator, a.clone_bindings(creator, project))
    for proj, kind, name, verb in all_requests(["", *PROJECTS]):
        token_allowed = a.decide(t, proj, kind, name, verb).allowed
        if proj == project:
            assert token_allowed == a.decide(creator, proj, kind, name, verb).allowed
        else:
            assert not token_allowed


@SETTINGS
@given(
    rules=policies(),
    req=st.sampled_from(all_requests(["", *PROJECTS])),
    sub=st.sampled_from(USERS),
    via=st.sampled_from(["self", "group", "wildcard"]),
)
def test_deny_overrides_allow(
    rules: list[Rule], req: tuple[str, str, str, str], sub: str, via: str
) -> None:
    proj, kind, name, verb = req
    a = Authorizer(stored=[*rules, RoleBinding("role:admin", "*", "*", "*").to_rule(sub)])
    assert a.decide(sub, proj, kind, name, verb).allowed or any(r.eft == "deny" for r in rules)
    if via == "self":
        deny = Rule("p", (sub, proj, kind, name, verb, "deny"))
    elif via == "group":
        a.apply(added=[Rule("g", (sub, "Group:denied"))])
        deny = Rule("p", ("Group:denied", proj or "*", kind, name, "role:admin", "deny"))
    else:
        deny = Rule("p", (sub, "*", "*", "*", "role:admin", "deny"))
    a.apply(added=[deny])
    d = a.decide(sub, proj, kind, name, verb)
    assert not d.allowed and d.reason.startswith("denied by")


@SETTINGS
@given(rules=policies(), wanted=bindings(), holder=st.sampled_from(USERS))
def test_what_covers_accepts_the_holder_really_holds(
    rules: list[Rule], wanted: RoleBinding, holder: str
) -> None:
    a = Authorizer(stored=rules)
    if a.covers(holder, [wanted]):
        return
    projects = PROJECTS if wanted.project == "*" else [wanted.project]
    kinds = KINDS if wanted.kind == "*" else [wanted.kind]
    for proj, kind, verb in itertools.product(projects, kinds, sorted(a.verbs_of(wanted.grant))):
        names = NAMES[kind] if wanted.name == "*" else [wanted.name]
        for name in names:
            assert a.decide(holder, proj, kind, name, verb).allowed, (proj, kind, name, verb)
