"""Decision tables: every ``tables/*.yaml`` must pass, and broken tables are refused precisely."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from authz.decision_table import (
    format_case_result,
    format_result,
    load_table,
    run_table,
    token_sha,
)
from authz.errors import DecisionTableError

TABLES = sorted((Path(__file__).parent / "tables").glob("*.yaml"))


@pytest.mark.parametrize("path", TABLES, ids=[p.stem for p in TABLES])
def test_decision_table(path: Path) -> None:
    result = run_table(load_table(path))
    if not result.ok:
        pytest.fail(format_result(result), pytrace=False)


def test_there_are_tables() -> None:
    assert any(p.name == "spec.yaml" for p in TABLES)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "table.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


_CASE = """\
cases:
  - name: alice reads
    subject: User:alice
    action: get
    kind: servers
    expect: deny
"""


def _with_case(text: str) -> str:
    """``text`` (indented like the rest of this file) followed by one valid case."""
    return textwrap.dedent(text) + _CASE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("just a string\n", "a decision table is a mapping", id="not-a-mapping"),
        pytest.param("cases: [\n", "not valid YAML", id="bad-yaml"),
        pytest.param(
            "policies: []\n" + _CASE,
            "table.yaml:1: the table: unknown key `policies`",
            id="unknown-top-level-key",
        ),
        pytest.param(
            "groups: {}\n", "`cases`: a table needs a non-empty list of cases", id="no-cases"
        ),
        pytest.param(
            """\
            cases:
              - name: first
                subject: User:alice
                action: get
                kind: servers
                expect: allow
              - name: no subject
                action: get
                kind: servers
                expect: deny
            """,
            "table.yaml:7: case 2 `no subject`: `subject` is missing",
            id="missing-field",
        ),
        pytest.param(
            """\
            cases:
              - subject: User:alice
                action: get
                kind: servers
                expect: maybe
            """,
            "table.yaml:2: case 1: `expect` must be `allow` or `deny`, not `maybe`",
            id="bad-expect",
        ),
        pytest.param(
            """\
            cases:
              - subject: User:alice
                action: get
                kind: servers
                expect: yes
            """,
            "`expect` must be a string, not `True`",
            id="expect-yaml-boolean",
        ),
        pytest.param(
            """\
            cases:
              - name: label
                subject: User:alice
                action: get
                kind: servers
                name: foo
                expect: deny
            """,
            "table.yaml:6: key `name` appears twice in one mapping (in a case, `name` labels",
            id="duplicate-key",
        ),
        pytest.param(
            """\
            cases:
              - subject: User:alice
                action: get
                kind: server
                expect: deny
            """,
            "case 1: unknown resource kind `server`",
            id="unknown-kind",
        ),
        pytest.param(
            """\
            cases:
              - subject: Usr:alice
                action: get
                kind: servers
                expect: deny
            """,
            "case 1: subject type `Usr` is unknown",
            id="bad-subject",
        ),
        pytest.param(
            """\
            cases:
              - subject: User:alice
                action: get
                kind: tools
                object: create_issue
                expect: deny
            """,
            "case 1: tool name `create_issue` is not valid",
            id="bad-tool-name",
        ),
        pytest.param(
            """\
            cases:
              - subject: User:alice
                action: get
                kind: servers
                expect: deny
                colour: blue
            """,
            "table.yaml:2: case 1: unknown key `colour`",
            id="unknown-case-key",
        ),
        pytest.param(
            """\
            cases:
              - subject: McpToken:ci-bot
                action: get
                kind: servers
                expect: deny
            """,
            "case 1: token `ci-bot` is not defined under `tokens`",
            id="undefined-token",
        ),
        pytest.param(
            _with_case(
                """\
                bindings:
                  - subjects: [User:alice]
                    roleBindings: ["role:editor,resource:servers"]
                """
            ),
            "table.yaml:2: binding 1: unknown role `editor` in binding `role:editor,resource:s",
            id="binding-unknown-role",
        ),
        pytest.param(
            _with_case(
                """\
                bindings:
                  - subjects: [User:alice]
                    roleBindings: ["action:logs,resource:servers"]
                """
            ),
            "gives `resource` with an operation",
            id="binding-operation-with-resource",
        ),
        pytest.param(
            _with_case(
                """\
                bindings:
                  - subjects: [User:alice]
                """
            ),
            "table.yaml:2: binding 1: `roleBindings` is missing",
            id="binding-missing-field",
        ),
        pytest.param(
            _with_case(
                """\
                tokens:
                  ci-bot:
                    project: web
                    creator: User:alice
                    roleBindings: ["role:view,resource:nope"]
                """
            ),
            "table.yaml:3: token `ci-bot`: unknown resource kind `nope`",
            id="token-bad-binding",
        ),
        pytest.param(
            _with_case(
                """\
                tokens:
                  ci-bot:
                    project: web
                    creator: User:alice
                    rbac: clone
                    roleBindings: ["role:view,resource:servers"]
                """
            ),
            "token `ci-bot`: has both `rbac: clone` and `roleBindings`",
            id="token-clone-and-bindings",
        ),
        pytest.param(
            _with_case(
                """\
                tokens:
                  ci-bot:
                    project: web
                    creator: User:alice
                    rbac: full
                """
            ),
            "token `ci-bot`: `rbac` must be `empty` or `clone`, not `full`",
            id="token-bad-rbac",
        ),
        pytest.param(
            _with_case(
                """\
                tokens:
                  ci-bot:
                    creator: User:alice
                """
            ),
            "token `ci-bot`: `project` is missing",
            id="token-missing-project",
        ),
        pytest.param(
            _with_case(
                """\
                tokens:
                  ci-bot:
                    project: web
                    creator: Group:devs
                """
            ),
            "token `ci-bot`: `creator` must be a user, not `Group:devs`",
            id="token-creator-not-user",
        ),
        pytest.param(
            _with_case(
                """\
                tokens:
                  ci-bot:
                    project: web
                    creator: User:alice
                    revoked: "no"
                """
            ),
            "`revoked` must be `true` or `false`, not `no`",
            id="token-bad-flag",
        ),
        pytest.param(
            _with_case(
                """\
                groups:
                  User:bob: [User:alice]
                """
            ),
            "group `User:bob`: `User:bob` is not a group",
            id="group-not-a-group",
        ),
        pytest.param(
            _with_case(
                """\
                groups:
                  Group:devs: User:alice
                """
            ),
            "group `Group:devs`: `members` must be a list of strings",
            id="group-members-not-a-list",
        ),
    ],
)
def test_load_table_refuses(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(DecisionTableError) as info:
        load_table(_write(tmp_path, text))
    assert expected in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "table.yaml"))


def test_missing_file_is_a_table_error(tmp_path: Path) -> None:
    with pytest.raises(DecisionTableError, match="cannot read decision table"):
        load_table(tmp_path / "nope.yaml")


def test_loaded_table_resolves_tokens_and_defaults(tmp_path: Path) -> None:
    table = load_table(
        _write(
            tmp_path,
            """\
            tokens:
              ci-bot:
                project: web
                creator: User:alice
            cases:
              - subject: McpToken:ci-bot
                action: get
                kind: servers
                expect: deny
            """,
        )
    )
    (token,) = table.tokens
    assert token.rbac == "empty"
    assert token.sha == hashlib.sha256(b"ci-bot").hexdigest() == token_sha("ci-bot")
    (case,) = table.cases
    assert case.decide_as == f"McpToken:{token.sha}"
    assert (case.object, case.project, case.name) == ("", "", "")
    assert case.source == f"{tmp_path / 'table.yaml'}:6"


def test_failed_cases_are_reported_as_a_diff(tmp_path: Path) -> None:
    table = load_table(
        _write(
            tmp_path,
            """\
            bindings:
              - subjects: [User:alice]
                roleBindings: ["role:view,resource:servers"]
            cases:
              - name: alice reads servers
                subject: User:alice
                action: get
                kind: servers
                project: web
                expect: allow
              - name: wrong on purpose
                subject: User:alice
                action: update
                kind: servers
                object: github
                project: web
                expect: allow
                reason: role:edit
            """,
        )
    )
    result = run_table(table)
    assert not result.ok
    assert [r.passed for r in result.results] == [True, False]
    failed = result.failures[0]
    assert failed.actual == "deny"
    assert failed.problems == ("expected allow, got deny", "reason does not contain `role:edit`")
    text = format_result(result)
    assert text.splitlines()[0].endswith("2 cases, 1 passed, 1 failed")
    assert f"FAIL {tmp_path / 'table.yaml'}:11 case 2 `wrong on purpose`" in text
    assert "User:alice update servers/github in project web" in text
    assert "  - expected: allow, reason containing `role:edit`" in text
    assert "  + actual:   deny, no policy line allows User:alice" in text
    assert format_case_result(result.results[0]).startswith("ok ")


def test_bindings_are_checked_against_the_policy_that_runs(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "roles.csv").write_text("g2, get, role:reader\n", encoding="utf-8")
    table_path = _write(
        tmp_path,
        """\
        bindings:
          - subjects: [User:alice]
            roleBindings: ["role:reader,resource:servers"]
        cases:
          - subject: User:alice
            action: get
            kind: servers
            expect: allow
        """,
    )
    with pytest.raises(DecisionTableError, match="unknown role `reader`"):
        load_table(table_path)  # the shipped policy has no role `reader`
    table = load_table(table_path, policy_dir=policies)
    assert run_table(table, policy_dir=policies).ok
