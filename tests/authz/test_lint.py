"""``mcpctl policy lint``: the shipped policy is clean, and each finding points at its line."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import pytest

import authz
from authz.lint import MAX_HIERARCHY_LEVEL, LintIssue, format_issue, lint
from authz.policy import Rule
from authz.reference import build_reference

PACKAGE = Path(authz.__file__).parent
MODEL = PACKAGE / "model.conf"
SHIPPED = PACKAGE / "policies"

# A small, clean vocabulary every test policy starts from (base.csv).
BASE = """\
g2, get, role:view
g2, list, role:view
g2, role:view, role:edit
g2, update, role:edit
g2, run, role:run
g2, logs, action:logs
"""

Found = list[tuple[str, str, str]]  # (severity, "file:line", code)


class Policy:
    """A temporary policy directory with base.csv plus the files a test writes."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "policies"
        self.dir.mkdir()
        self.write("base.csv", BASE)

    def write(self, name: str, text: str) -> None:
        (self.dir / name).write_text(textwrap.dedent(text), encoding="utf-8")

    def at(self, name: str, line: int) -> str:
        return f"{self.dir / name}:{line}"

    def lint(self, model: Path = MODEL, *, unused_groups: bool = False) -> list[LintIssue]:
        """The findings; ``unused-group`` only if asked (most test policies have g lines
        for groups that grant nothing, beside the point of the test)."""
        found = lint(self.dir, model)
        return [i for i in found if unused_groups or i.code != "unused-group"]

    def found(self, model: Path = MODEL) -> Found:
        return [(i.severity, i.source, i.code) for i in self.lint(model)]


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return Policy(tmp_path)


def test_shipped_policies_lint_clean() -> None:
    issues = lint(SHIPPED, MODEL)
    assert issues == [], "\n".join(format_issue(i) for i in issues)


def test_base_vocabulary_lints_clean(policy: Policy) -> None:
    assert policy.found() == []


# -- lines that do not parse ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "code", "message"),
    [
        ("g3, User:a, Group:b", "unknown-rule-type", "unknown rule type `g3`"),
        ("p, User:a, *, *, *, role:view", "wrong-arity", "this one has 5"),
        ("g, User:a, Group:b, Group:c", "wrong-arity", "this one has 3"),
        ("p, User:a b, *, *, *, role:view, allow", "bad-character", "value `User:a b`"),
        ('p, "User:a", *, *, *, role:view, allow', "bad-character", 'value `"User:a"`'),
        ("p, User:a, *, *, *, role:view, allow # note", "bad-character", "allow # note"),
        ("p, User:a, , *, *, role:view, allow", "empty-value", "value 2 after `p` is empty"),
        ("p, User:a, *, *, *, role:view, permit", "bad-effect", "effect `permit` is unknown"),
    ],
)
def test_unparsable_line(policy: Policy, line: str, code: str, message: str) -> None:
    policy.write("test.csv", f"# a comment\n{line}\n")
    issues = policy.lint()
    assert [(i.severity, i.source, i.code) for i in issues] == [
        ("error", policy.at("test.csv", 2), code)
    ]
    assert message in issues[0].message


def test_every_bad_line_is_reported_and_the_good_ones_still_checked(policy: Policy) -> None:
    policy.write(
        "test.csv",
        """\
        g3, a, b
        p, User:a, *, *, *, role:view
        p, User:a, *, *, *, role:nope, allow

        p, User:a, *, *, *, role:view, maybe
        """,
    )
    assert policy.found() == [
        ("error", policy.at("test.csv", 1), "unknown-rule-type"),
        ("error", policy.at("test.csv", 2), "wrong-arity"),
        ("error", policy.at("test.csv", 3), "unknown-role"),
        ("error", policy.at("test.csv", 5), "bad-effect"),
    ]


# -- subjects and vocabulary -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "severity", "code", "message"),
    [
        ("p, Usr:a, *, *, *, role:view, allow", "error", "bad-subject", "`Usr` is unknown"),
        ("p, User:a, *, *, *, role:viewer, allow", "error", "unknown-role", "`role:viewer`"),
        ("p, User:a, *, *, *, action:nope, allow", "error", "unknown-operation", "`action:nope`"),
        (
            "p, User:a, *, servers, *, action:logs, allow",
            "error",
            "operation-scope",
            "operation `action:logs` is bound on `servers/*`",
        ),
        (
            "p, User:a, *, *, github, action:logs, allow",
            "error",
            "operation-scope",
            "bound on `*/github`",
        ),
        (
            "p, User:a, *, *, *, get, allow",
            "warning",
            "verb-binding",
            "`get` is a verb: bind a role or operation, not a verb",
        ),
        (
            "p, User:a, *, *, *, fly, deny",
            "warning",
            "verb-binding",
            "no role or operation includes it",
        ),
        ("p, User:a, *, *, *, perm:x, allow", "error", "bad-act", "`perm:x` is not a role"),
        ("p, User:a, *, server, *, role:view, allow", "error", "unknown-kind", "`server`"),
        ("p, User:a, Web_1, *, *, role:view, allow", "error", "bad-project", "`Web_1`"),
        ("p, User:a, *, tools, github, role:run, allow", "error", "bad-name", "`github`"),
        ("p, User:a, *, servers, -x, role:view, allow", "error", "bad-name", "`-x`"),
        ("g, Usr:a, Group:b", "error", "bad-subject", "`Usr` is unknown"),
        ("g, User:a, User:b", "error", "bad-group", "`User:b` is not a group"),
        ("g, User:a, Group:Devs", "error", "bad-group", "`Devs` is not valid"),
        ("g2, get, view", "error", "bad-role-definition", "`view` is neither"),
        ("g2, get, role:", "error", "bad-role-definition", "`role:` is neither"),
        ("g2, get, role:View", "error", "bad-role-definition", "`role:View`"),
        ("g2, fetch, role:view", "warning", "unknown-member", "`fetch` is neither"),
        ("g2, role:reader, role:view", "warning", "unknown-member", "no `g2` line defines"),
        ("g2, action:nope, role:view", "warning", "unknown-member", "`action:nope`"),
    ],
)
def test_vocabulary(policy: Policy, line: str, severity: str, code: str, message: str) -> None:
    policy.write("test.csv", f"\n{line}\n")
    issues = policy.lint()
    assert [(i.severity, i.source, i.code) for i in issues] == [
        (severity, policy.at("test.csv", 2), code)
    ]
    assert message in issues[0].message


@pytest.mark.parametrize(
    "line",
    [
        "p, Group:system:mcptokens, *, *, *, action:logs, deny",
        "p, McpToken:" + "ab" * 32 + ", web, tools, github__create_issue, role:run, allow",
        "p, User:alice@example.com, *, servers, github, role:edit, allow",
        "g, McpToken:" + "0" * 64 + ", Group:system:mcptokens",
        "g, Group:interns, Group:devs",
        "g2, logs, role:auditor",  # an operation's verb is a known verb
        "g2, action:logs, role:auditor",
        "g2, role:view, action:peek",  # an operation may include a role
    ],
)
def test_valid_lines_are_clean(policy: Policy, line: str) -> None:
    policy.write("test.csv", line + "\n")
    assert policy.found() == []


# -- duplicates and shadows --------------------------------------------------------------------


def test_duplicates_name_both_locations(policy: Policy) -> None:
    policy.write("a.csv", "p, User:a, *, servers, *, role:view, allow\n")
    policy.write(
        "z.csv",
        """\
        p, User:a, *, servers, *, role:view, allow
        g2, get,  role:view
        """,
    )
    issues = policy.lint()
    assert [(i.severity, i.source, i.code) for i in issues] == [
        ("warning", policy.at("z.csv", 1), "duplicate"),
        ("warning", policy.at("z.csv", 2), "duplicate"),
    ]
    assert policy.at("a.csv", 1) in issues[0].message
    assert policy.at("base.csv", 1) in issues[1].message


def test_shadowed_allow_lines(policy: Policy) -> None:
    policy.write(
        "test.csv",
        """\
        p, User:a, *, *, *, role:edit, allow
        p, User:a, web, servers, foo, role:view, allow
        p, User:a, web, servers, foo, role:run, allow
        p, User:b, web, servers, foo, role:view, allow
        p, User:c, *, servers, github, role:run, allow
        p, User:c, web, tools, github__create_issue, role:run, allow
        p, User:c, web, tools, slack__post, role:run, allow
        p, User:c, web, tools, *, role:run, allow
        p, User:d, web, servers, x, role:view, allow
        p, User:d, *, servers, *, role:edit, allow
        p, User:e, web, servers, *, role:view, allow
        p, User:e, *, servers, x, role:edit, allow
        p, User:f, *, *, *, action:logs, allow
        p, User:f, web, *, *, action:logs, allow
        """,
    )
    issues = policy.lint()
    assert [(i.severity, i.source, i.code) for i in issues] == [
        ("warning", policy.at("test.csv", 2), "shadowed"),  # by line 1: edit includes view
        ("warning", policy.at("test.csv", 6), "shadowed"),  # by line 5: a server covers its tools
        ("warning", policy.at("test.csv", 7), "shadowed"),  # by the later line 8: tools/*
        ("warning", policy.at("test.csv", 9), "shadowed"),  # by the later line 10
        ("warning", policy.at("test.csv", 14), "shadowed"),  # by line 13: every project
    ]
    assert policy.at("test.csv", 1) in issues[0].message
    assert "`p, User:a, *, *, *, role:edit, allow`" in issues[0].message
    assert policy.at("test.csv", 5) in issues[1].message
    assert policy.at("test.csv", 8) in issues[2].message
    assert policy.at("test.csv", 10) in issues[3].message


def test_allow_overridden_by_deny(policy: Policy) -> None:
    policy.write(
        "test.csv",
        """\
        p, User:a, web, servers, foo, role:view, allow
        p, User:a, *, servers, *, role:edit, deny
        p, User:b, web, servers, foo, role:edit, allow
        p, User:b, *, servers, *, role:view, deny
        p, User:c, web, servers, foo, role:view, allow
        p, User:a, web, servers, *, role:view, deny
        p, User:d, *, servers, *, role:view, allow
        p, User:d, web, servers, *, role:view, deny
        p, User:e, web, tools, github__x, role:run, allow
        p, User:e, *, servers, github, role:run, deny
        """,
    )
    issues = policy.lint()
    assert [(i.severity, i.source, i.code) for i in issues] == [
        ("warning", policy.at("test.csv", 1), "overridden"),
        ("warning", policy.at("test.csv", 9), "overridden"),
    ]
    assert policy.at("test.csv", 2) in issues[0].message
    assert "`role:view`" in issues[0].message


# -- role graphs -------------------------------------------------------------------------------


def test_cycles(policy: Policy) -> None:
    policy.write(
        "test.csv",
        """\
        g, User:a, Group:x
        g, Group:x, Group:y
        g, Group:y, Group:z
        g, Group:z, Group:x
        g2, role:p, role:q
        g2, role:q, role:p
        g2, role:s, role:s
        """,
    )
    issues = policy.lint()
    assert [(i.severity, i.source, i.code) for i in issues] == [
        ("error", policy.at("test.csv", 2), "cycle"),
        ("error", policy.at("test.csv", 5), "cycle"),
        ("error", policy.at("test.csv", 7), "cycle"),
    ]
    assert issues[0].message.endswith("`Group:x` -> `Group:y` -> `Group:z` -> `Group:x`")
    assert issues[1].message.endswith("`role:p` -> `role:q` -> `role:p`")
    assert issues[2].message.endswith("`role:s` -> `role:s`")


def _chain(ptype: str, links: int) -> list[Rule]:
    if ptype == "g":
        nodes = ["User:u", *(f"Group:g{i}" for i in range(1, links + 1))]
    else:
        nodes = ["get", *(f"role:r{i}" for i in range(1, links + 1))]
    return [Rule(ptype, pair) for pair in itertools.pairwise(nodes)]


@pytest.mark.parametrize("ptype", ["g", "g2"])
@pytest.mark.parametrize("links", [MAX_HIERARCHY_LEVEL - 1, MAX_HIERARCHY_LEVEL, 12])
def test_chains_deeper_than_casbin_follows(policy: Policy, ptype: str, links: int) -> None:
    chain = _chain(ptype, links)
    top = chain[-1].values[1]
    # A grant on the chain's top: to Group:gN (g), or of role:rN (g2).
    grant = (
        Rule("p", (top, "*", "*", "*", "role:view", "allow"))
        if ptype == "g"
        else Rule("p", ("User:u", "*", "*", "*", top, "allow"))
    )
    policy.write("test.csv", "".join(f"{r}\n" for r in [*chain, grant]))
    issues = policy.lint()
    too_deep = links >= MAX_HIERARCHY_LEVEL
    assert [(i.severity, i.source, i.code) for i in issues] == (
        [("error", policy.at("test.csv", MAX_HIERARCHY_LEVEL), "too-deep")] if too_deep else []
    )
    # The limit is Casbin's own: its enforcer reaches the top exactly when lint is quiet.
    base = [
        Rule("g2", tuple(part.strip() for part in line.split(",")[1:]))
        for line in BASE.splitlines()
    ]
    enforcer = build_reference(MODEL, [*base, *chain, grant])
    assert enforcer.enforce("User:u", "web", "servers", "x", "get") is not too_deep


def test_too_deep_names_the_bottom_and_the_link(policy: Policy) -> None:
    policy.write("test.csv", "".join(f"{r}\n" for r in _chain("g", MAX_HIERARCHY_LEVEL)))
    (issue,) = policy.lint()
    assert issue.message.startswith(
        f"`User:u` reaches `Group:g{MAX_HIERARCHY_LEVEL}` only through {MAX_HIERARCHY_LEVEL}"
    )


# -- the model and the directory -------------------------------------------------------------


def test_model_that_differs_is_a_warning(policy: Policy, tmp_path: Path) -> None:
    model = tmp_path / "model.conf"
    text = MODEL.read_text(encoding="utf-8")
    model.write_text(text.replace("p.proj == r.proj", "p.proj == r.proj || true"), "utf-8")
    issues = policy.lint(model)
    assert [(i.severity, i.source, i.code) for i in issues] == [
        ("warning", str(model), "model-differs")
    ]
    assert "decisions fall back to the plain enforcer" in issues[0].message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello world\n", "cannot parse model"),
        ("[request_definition]\nr = sub, obj\n[policy_definition]\np = sub, obj\n", "no `e`"),
        (None, "does not exist"),
    ],
)
def test_broken_model_is_an_error(
    policy: Policy, tmp_path: Path, text: str | None, message: str
) -> None:
    model = tmp_path / "model.conf"
    if text is not None:
        model.write_text(text, encoding="utf-8")
    issues = policy.lint(model)
    assert [(i.severity, i.source, i.code) for i in issues] == [("error", str(model), "bad-model")]
    assert message in issues[0].message


def test_directory_without_policy_files(tmp_path: Path) -> None:
    issues = lint(tmp_path, MODEL)
    assert [(i.severity, i.source, i.code) for i in issues] == [
        ("error", str(tmp_path), "bad-policy-dir")
    ]


def test_unreadable_file(policy: Policy) -> None:
    (policy.dir / "test.csv").write_bytes(b"p, User:\xff, *, *, *, role:view, allow\n")
    assert policy.found() == [("error", str(policy.dir / "test.csv"), "unreadable")]


# -- output ------------------------------------------------------------------------------------


def test_issues_are_sorted_by_file_and_line_and_formatted(policy: Policy) -> None:
    policy.write("b.csv", "\n\n\n\n\n\n\n\n\n\np, User:a, *, *, *, get, allow\n")
    policy.write("a.csv", "p, User:a, *, *, *, role:x, allow\n\np, User:a, *, *, *, list, allow\n")
    issues = policy.lint()
    assert [i.source for i in issues] == [
        policy.at("a.csv", 1),
        policy.at("a.csv", 3),
        policy.at("b.csv", 11),
    ]
    assert issues[2].location == (str(policy.dir / "b.csv"), 11)
    assert format_issue(issues[0]) == (
        f"{policy.at('a.csv', 1)}: error: role `role:x` is not defined: no `g2` line has it "
        "on its right side [unknown-role]"
    )
    for issue in issues:
        assert issue.message == issue.message.rstrip(".")
        assert issue.message[0].islower() or issue.message[0] == "`"
