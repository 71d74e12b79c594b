"""who-can, diff and coverage against brute force, on generated policies (hypothesis)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authz import Authorizer, TokenGrant
from authz.access import Grant, access_list
from authz.coverage import coverage
from authz.decision import Decision
from authz.decision_table import DecisionTable, load_table
from authz.decision_table.run import build_world
from authz.diff import Universe, brute_force, diff
from authz.policy import Rule, default_policy_dir
from authz.vocabulary import tool_server
from authz.whocan import who_can

USERS = ["User:a", "User:b", "User:c"]
GROUPS = ["Group:g1", "Group:g2", "Group:g3"]
PROJECTS = ["p1", "p2", "*"]
OBJECTS = [("servers", "s1"), ("servers", "*"), ("tools", "s1__t"), ("secrets", "k1"), ("*", "*")]
ACTS = ["role:view", "role:edit", "role:run", "action:logs", "get"]
REQUESTS = [
    (verb, kind, name, proj)
    for verb in ("get", "update", "run", "logs")
    for kind, name in (("servers", "s1"), ("servers", ""), ("tools", "s1__t"), ("secrets", "k1"))
    for proj in ("p1", "p2", "")
]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def roles_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("policies")
    for name in ("roles.csv", "operations.csv"):
        (d / name).write_text((default_policy_dir() / name).read_text())
    return d


@st.composite
def policies(draw: st.DrawFn) -> list[Rule]:
    rules = []
    for i in range(draw(st.integers(0, 7))):
        child = draw(st.sampled_from(USERS + GROUPS))
        rules.append(Rule("g", (child, draw(st.sampled_from(GROUPS))), f"db:g#{i}"))
    for i in range(draw(st.integers(0, 9))):
        sub = draw(st.sampled_from(USERS + GROUPS))
        kind, name = draw(st.sampled_from(OBJECTS))
        eft = "deny" if draw(st.integers(0, 3)) == 0 else "allow"
        values = (
            sub,
            draw(st.sampled_from(PROJECTS)),
            kind,
            name,
            draw(st.sampled_from(ACTS)),
            eft,
        )
        rules.append(Rule("p", values, f"db:p#{i}"))
    return rules


def _subjects(a: Authorizer) -> set[str]:
    out: set[str] = set()
    for r in a.rules():
        out.update([r.sub] if r.ptype == "p" else r.values if r.ptype == "g" else [])
    return out


@SETTINGS
@given(rules=policies(), req=st.sampled_from(REQUESTS))
def test_who_can_agrees_with_enforcing_every_subject(
    roles_only: Path, rules: list[Rule], req: tuple[str, str, str, str]
) -> None:
    verb, kind, name, proj = req
    a = Authorizer(policy_dir=roles_only, stored=rules)
    result = who_can(a, verb, kind, name, proj)
    want = {s for s in _subjects(a) if a.decide(s, proj, kind, name, verb).allowed}
    assert {x.subject for x in result.allowed} == want
    for x in result.allowed:
        assert x.rule == a.decide(x.subject, proj, kind, name, verb).rule
        assert x.path[0] == x.subject and x.path[-1] == x.rule.values[4]
    for x in result.denied:
        d = a.decide(x.subject, proj, kind, name, verb)
        assert not d.allowed and d.rule == x.rule and x.rule.eft == "deny"


def _covers(g: Grant, proj: str, kind: str, name: str, verb: str) -> bool:
    """Does an access-list entry cover a request? (the model's matcher, read as a user would)"""
    if verb not in g.verbs or g.project not in ("*", proj):
        return False
    if g.kind in ("*", kind) and g.name in ("*", name):
        return True
    return kind == "tools" and g.kind == "servers" and g.name in ("*", tool_server(name))


@SETTINGS
@given(rules=policies(), project=st.sampled_from([None, "p1", "p2", ""]))
def test_access_list_agrees_with_enforcing_every_request(
    roles_only: Path, rules: list[Rule], project: str | None
) -> None:
    a = Authorizer(policy_dir=roles_only, stored=rules)
    for subject in sorted(_subjects(a) | {"User:nobody"}):
        result = access_list(a, subject, project)
        listed = {g.rule for g in (*result.allowed, *result.denied)}
        for verb, kind, name, proj in REQUESTS:
            if project is not None and proj != project:
                continue
            d = a.decide(subject, proj, kind, name, verb)
            allow = any(_covers(g, proj, kind, name, verb) for g in result.allowed)
            deny = any(_covers(g, proj, kind, name, verb) for g in result.denied)
            assert d.allowed == (allow and not deny), (subject, verb, kind, name, proj)
            assert d.rule is None or d.rule in listed  # the deciding line is in the list
        assert all(g.allowed for g in result.allowed) and not any(g.allowed for g in result.denied)


def test_access_list_refuses_a_model_it_does_not_read(roles_only: Path, tmp_path: Path) -> None:
    from authz.errors import PolicyError
    from authz.policy import default_model_path

    model = tmp_path / "model.conf"
    model.write_text(default_model_path().read_text().replace('p.proj == "*"', 'p.proj == " * "'))
    a = Authorizer(policy_dir=roles_only, model_path=model)
    assert not a.indexed
    with pytest.raises(PolicyError, match="indexed model"):
        access_list(a, "User:a")


def test_who_can_applies_the_token_rules(roles_only: Path) -> None:
    sha_ok, sha_other = "a" * 64, "b" * 64
    rules = [
        Rule("p", ("User:a", "*", "servers", "*", "role:view", "allow"), "db:1"),
        Rule("p", (f"McpToken:{sha_ok}", "p1", "servers", "*", "role:view", "allow"), "db:2"),
        Rule("p", (f"McpToken:{sha_other}", "p1", "servers", "*", "role:view", "allow"), "db:3"),
    ]
    tokens = [TokenGrant(sha_ok, "p1", "User:a"), TokenGrant(sha_other, "p1", "User:b")]
    a = Authorizer(policy_dir=roles_only, stored=rules, tokens=tokens)
    result = who_can(a, "get", "servers", "s1", "p1")
    assert [x.subject for x in result.allowed] == [f"McpToken:{sha_ok}", "User:a"]
    assert [x.subject for x in result.denied] == [f"McpToken:{sha_other}"]
    assert "creator User:b" in result.denied[0].note
    for sub in (f"McpToken:{sha_ok}", f"McpToken:{sha_other}"):
        assert a.decide(sub, "p1", "servers", "s1", "get").allowed == (sub.endswith("a" * 64))


@SETTINGS
@given(rules=policies())
def test_diff_of_a_policy_with_itself_is_empty(roles_only: Path, rules: list[Rule]) -> None:
    a = Authorizer(policy_dir=roles_only, stored=rules)
    b = Authorizer(policy_dir=roles_only, stored=list(reversed(rules)))
    result = diff(a, b)
    assert result.changes == ()
    assert set(result.verdicts.values()) == {"equivalent"}


@SETTINGS
@given(old=policies(), new=policies(), shared=policies())
def test_diff_equals_brute_force_over_the_universe(
    roles_only: Path, old: list[Rule], new: list[Rule], shared: list[Rule]
) -> None:
    a = Authorizer(policy_dir=roles_only, stored=shared + old)
    b = Authorizer(policy_dir=roles_only, stored=shared + new)
    fast, slow = diff(a, b), brute_force(a, b)
    assert [c.key for c in fast.changes] == [c.key for c in slow.changes]
    assert [c.gained for c in fast.changes] == [c.gained for c in slow.changes]
    assert fast.verdicts == slow.verdicts
    for c in fast.changes:
        assert c.new.allowed is c.gained and c.old.allowed is not c.gained


def test_diff_names_the_lines_and_the_verdicts(roles_only: Path) -> None:
    grant = Rule("p", ("User:a", "p1", "servers", "*", "role:view", "allow"), "new.csv:3")
    a = Authorizer(policy_dir=roles_only, stored=[])
    b = Authorizer(policy_dir=roles_only, stored=[grant])
    result = diff(a, b)
    assert result.lost == ()
    assert {(c.subject, c.project, c.verb) for c in result.gained} == {
        ("User:a", "p1", "get"),
        ("User:a", "p1", "list"),
    }
    assert all(c.new.rule == grant and c.new.rule.source == "new.csv:3" for c in result.gained)
    assert result.verdicts["p1"] == "more permissive"
    assert result.verdicts["(other)"] == "equivalent"
    assert {n for _, _, n, _ in [c.key[1:] for c in result.gained]} >= {"", "(other)"}
    back = diff(b, a)
    assert back.gained == () and back.verdicts["p1"] == "less permissive"
    assert "servers" in Universe(a, b).names and "(other)__(other)" in Universe(a, b).names["tools"]


def test_coverage_marks_a_line_covered_iff_removing_it_changes_a_case(tmp_path: Path) -> None:
    pdir = tmp_path / "policies"
    pdir.mkdir()
    for name in ("roles.csv", "operations.csv"):
        (pdir / name).write_text((default_policy_dir() / name).read_text())
    (pdir / "x.csv").write_text(
        "p, Group:devs, *, servers, *, role:view, allow\n"  # 1: decides case 1
        "p, Group:devs, *, servers, *, role:view, allow\n"  # 2: a duplicate, never decides
        "p, User:bob, *, secrets, *, role:edit, deny\n"  # 3: never asked about
        "g, User:bob, Group:devs\n"  # 4: the only path
        "g, User:bob, Group:ops\n"  # 5
        "g, Group:ops, Group:devs\n"  # 6: an alternative path beside 4
    )
    table = tmp_path / "t.yaml"
    table.write_text(
        "cases:\n"
        "  - {subject: User:bob, action: get, kind: servers, object: s1, expect: allow}\n"
        "  - {subject: User:eve, action: get, kind: servers, expect: deny}\n"
    )
    t = load_table(table, policy_dir=pdir)
    world = build_world(t, pdir)
    files = [r for r in world.rules() if r.source.startswith("policies/")]
    cov = coverage(t, world, files)
    covered = {r.source for r in cov.covered}
    assert "policies/x.csv:1" in covered
    assert not covered & {f"policies/x.csv:{n}" for n in (2, 3, 4, 5, 6)}
    # The definition, checked by removing each line of x.csv in turn.
    lines = (pdir / "x.csv").read_text().splitlines()
    base = [(d.allowed, d.reason) for d in _decide_all(t, pdir)]
    for n in range(1, len(lines) + 1):
        (pdir / "x.csv").write_text("\n".join([*lines[: n - 1], "# removed", *lines[n:]]) + "\n")
        changed = [(d.allowed, d.reason) for d in _decide_all(t, pdir)] != base
        assert changed == (f"policies/x.csv:{n}" in covered), n
    (pdir / "x.csv").write_text("\n".join(lines) + "\n")


def _decide_all(t: DecisionTable, pdir: Path) -> list[Decision]:
    world = build_world(t, pdir)
    return [world.decide(c.decide_as, c.project, c.kind, c.object, c.action) for c in t.cases]
