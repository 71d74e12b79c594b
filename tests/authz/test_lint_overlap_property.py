"""lint's ``shadowed`` and ``overridden`` findings equal the pairwise definition.

:class:`~authz.lint.overlap.OverlapCheck` looks lines up by key and keeps only the first
line of each key; here every pair of lines is compared instead (what the check means,
quadratic), on generated policies with duplicates, wildcards, tools and nested groups.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authz.lint.overlap import OverlapCheck
from authz.policy import DENY, Rule, default_policy_dir, load_policy_dir

SUBJECTS = ["User:a", "User:b", "Group:g1", "Group:g2"]
PROJECTS = ["p1", "*"]
OBJECTS = [("servers", "s1"), ("servers", "*"), ("tools", "s1__t"), ("tools", "*"), ("*", "*")]
ACTS = ["role:view", "role:edit", "role:admin", "get", "update", "action:logs"]
SHIPPED = [r for r in load_policy_dir(default_policy_dir()) if r.ptype == "g2"]


@st.composite
def policies(draw: st.DrawFn) -> list[Rule]:
    rules = list(SHIPPED)
    for i in range(draw(st.integers(0, 4))):
        child, parent = draw(st.sampled_from(SUBJECTS)), draw(st.sampled_from(SUBJECTS[2:]))
        rules.append(Rule("g", (child, parent), f"f:g{i}"))
    for i in range(draw(st.integers(0, 12))):
        kind, name = draw(st.sampled_from(OBJECTS))
        values = (
            draw(st.sampled_from(SUBJECTS)),
            draw(st.sampled_from(PROJECTS)),
            kind,
            name,
            draw(st.sampled_from(ACTS)),
            "deny" if draw(st.integers(0, 3)) == 0 else "allow",
        )
        rules.append(Rule("p", values, f"f:p{i}"))
    return rules


def pairwise(rules: list[Rule]) -> set[tuple[str, str, str]]:
    check = OverlapCheck(rules)  # its _covers and _groups_of: the meaning, not the lookup
    found = set()
    plines = [(pos, r) for pos, r in enumerate(rules) if r.ptype == "p"]
    for pos, rule in plines:
        if rule.eft == DENY:
            continue
        subs = [rule.sub, *check._groups_of(rule.sub)]
        denies = [
            d for _, d in plines if d.eft == DENY and d.sub in subs and check._covers(d, rule)
        ]
        if denies:
            found.add((rule.source, "overridden", denies[0].source))
            continue
        wider = [
            o
            for opos, o in plines
            if o.eft != DENY
            and o.sub == rule.sub
            and o != rule
            and check._covers(o, rule)
            and (opos < pos or not check._covers(rule, o))
        ]
        if wider:
            found.add((rule.source, "shadowed", wider[0].source))
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies())
def test_overlap_findings_equal_the_pairwise_definition(rules: list[Rule]) -> None:
    got = set()
    for issue in OverlapCheck(rules).issues():
        if issue.code in ("shadowed", "overridden"):
            other = issue.message.split("f:")[1].split()[0].rstrip(")")
            got.add((issue.source, issue.code, "f:" + other))
    assert got == pairwise(rules)
