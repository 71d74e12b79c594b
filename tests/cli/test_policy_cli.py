"""`mcpctl policy lint|test|explain`: offline, with the documented exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from authz.policy import default_policy_dir
from cli.main import app

runner = CliRunner()
TABLES = Path(__file__).resolve().parents[1] / "authz" / "tables"


def test_lint_shipped_policies_is_clean() -> None:
    result = runner.invoke(app, ["policy", "lint", "--strict"])
    assert result.exit_code == 0, result.output
    assert "0 error(s), 0 warning(s)" in result.output


def test_lint_broken_policy_exits_3_with_file_and_line(tmp_path: Path) -> None:
    for f in default_policy_dir().glob("*.csv"):
        (tmp_path / f.name).write_text(f.read_text())
    (tmp_path / "extra.csv").write_text("# c\np, User:a, *, widgets, *, role:view, allow\n")
    result = runner.invoke(app, ["policy", "lint", str(tmp_path)])
    assert result.exit_code == 3
    assert "extra.csv:2" in result.output
    assert "widgets" in result.output


def test_policy_test_runs_the_spec_table() -> None:
    result = runner.invoke(app, ["policy", "test", str(TABLES / "spec.yaml")])
    assert result.exit_code == 0, result.output


def test_policy_test_failing_case_exits_1(tmp_path: Path) -> None:
    table = tmp_path / "t.yaml"
    table.write_text(
        "cases:\n  - subject: User:nobody\n    action: get\n    kind: servers\n    expect: allow\n"
    )
    result = runner.invoke(app, ["policy", "test", str(table)])
    assert result.exit_code == 1, result.output


def test_policy_test_malformed_table_exits_3(tmp_path: Path) -> None:
    table = tmp_path / "t.yaml"
    table.write_text("cases:\n  - subject: User:nobody\n    expect: perhaps\n")
    result = runner.invoke(app, ["policy", "test", str(table)])
    assert result.exit_code == 3


def test_explain_allowed_exits_0_and_shows_the_line() -> None:
    result = runner.invoke(
        app,
        [
            "policy",
            "explain",
            "User:bob",
            "get",
            "servers/github",
            "--project",
            "web",
            "--member",
            "User:bob=Group:devs",
            "--bind",
            "Group:devs=role:view,resource:servers,project:web",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("yes - allowed by `p, Group:devs, web, servers, *, role:view")
    assert "User:bob, Group:devs" in result.output


def test_explain_denied_exits_2_and_json_names_the_deny_line() -> None:
    result = runner.invoke(
        app,
        [
            "policy",
            "explain",
            "User:x",
            "create",
            "mcptokens",
            "-o",
            "json",
            "--member",
            "User:x=Group:system:mcptokens",
            "--bind",
            "User:x=role:admin,resource:*",
        ],
    )
    assert result.exit_code == 2, result.output
    body = json.loads(result.output)
    assert body["allowed"] is False
    lines = (default_policy_dir() / "deny.csv").read_text().splitlines()
    deny = lines.index("p, Group:system:mcptokens, *, mcptokens, *, role:edit, deny") + 1
    assert body["source"].endswith(f"deny.csv:{deny}")


def test_explain_bad_binding_exits_3() -> None:
    result = runner.invoke(
        app, ["policy", "explain", "User:x", "get", "servers", "--bind", "User:x=role:nope"]
    )
    assert result.exit_code == 3


def test_mcpctl_is_a_real_command() -> None:
    exe = Path(sys.executable).with_name("mcpctl")
    done = subprocess.run([str(exe), "policy", "lint"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    bad = subprocess.run(
        [str(exe), "policy", "explain", "User:x", "get", "servers", "--bind", "nonsense"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 3
    assert bad.stderr.startswith("error: --bind `nonsense` is not SUBJECT=BINDING")


# -- the security team's tooling (issue 17) --------------------------------------------


def _copy_shipped(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for f in default_policy_dir().glob("*.csv"):
        (d / f.name).write_text(f.read_text())
    return d


def test_lint_json_with_findings_has_the_documented_schema(tmp_path: Path) -> None:
    d = _copy_shipped(tmp_path / "p")
    (d / "extra.csv").write_text(
        "p, User:a, *, servers, *, role:view, allow\np, User:a, *, servers, *, role:view, allow\n"
    )
    result = runner.invoke(app, ["policy", "lint", str(d), "-o", "json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["schemaVersion"] == 1 and body["kind"] == "LintReport"
    assert body["errors"] == 0 and body["warnings"] == 1
    (issue,) = body["issues"]
    assert issue["code"] == "duplicate" and issue["line"] == 2
    assert issue["path"].endswith("extra.csv") and issue["severity"] == "warning"


def test_lint_sarif_and_github_outputs(tmp_path: Path) -> None:
    d = _copy_shipped(tmp_path / "p")
    (d / "extra.csv").write_text("p, User:a, *, widgets, *, role:view, allow\n")
    sarif = runner.invoke(app, ["policy", "lint", str(d), "-o", "sarif"])
    assert sarif.exit_code == 3
    run = json.loads(sarif.output)["runs"][0]
    assert run["results"][0]["ruleId"] == "unknown-kind"
    assert run["results"][0]["locations"][0]["physicalLocation"]["region"] == {"startLine": 1}
    github = runner.invoke(app, ["policy", "lint", str(d), "-o", "github"])
    assert github.output.startswith(f"::error file={d / 'extra.csv'},line=1,title=unknown-kind::")


def test_lint_sees_a_group_deny_over_a_member_allow_and_unused_groups(tmp_path: Path) -> None:
    d = _copy_shipped(tmp_path / "p")
    (d / "extra.csv").write_text(
        "g, User:a, Group:devs\n"
        "p, Group:devs, *, secrets, *, role:view, deny\n"
        "p, User:a, web, secrets, db, role:view, allow\n"
        "g, User:b, Group:idle\n"
    )
    result = runner.invoke(app, ["policy", "lint", str(d), "-o", "json"])
    codes = {(i["code"], i["line"]) for i in json.loads(result.output)["issues"]}
    assert ("overridden", 3) in codes
    assert ("unused-group", 4) in codes


def test_missing_policy_dir_is_a_clear_error_everywhere(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    table = str(TABLES / "spec.yaml")
    for args in (
        ["policy", "test", table, "--policy-dir", missing],
        ["policy", "explain", "User:a", "get", "servers", "--policy-dir", missing],
        ["policy", "who-can", "get", "servers", "--policy-dir", missing],
        ["policy", "diff", missing, str(default_policy_dir())],
        ["policy", "fmt", missing, "--check"],
        ["policy", "lint", missing],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 3, (args, result.output)
        assert "does not exist" in result.output, args
        assert "Traceback" not in result.output


def test_policy_test_checks_bindings_against_the_given_dir(tmp_path: Path) -> None:
    d = _copy_shipped(tmp_path / "p")
    (d / "roles.csv").write_text((d / "roles.csv").read_text() + "g2, get, role:auditor\n")
    table = tmp_path / "t.yaml"
    table.write_text(
        "bindings:\n  - subjects: [User:a]\n    roleBindings: ['role:auditor,resource:servers']\n"
        "cases:\n  - {subject: User:a, action: get, kind: servers, object: x, expect: allow}\n"
    )
    assert runner.invoke(app, ["policy", "test", str(table), "--policy-dir", str(d)]).exit_code == 0
    shipped = runner.invoke(app, ["policy", "test", str(table)])
    assert shipped.exit_code == 3 and "unknown role `auditor`" in shipped.output


def test_a_case_keyed_name_instead_of_object_is_an_error(tmp_path: Path) -> None:
    table = tmp_path / "t.yaml"
    table.write_text(
        "bindings:\n  - subjects: [User:a]\n"
        "    roleBindings: ['role:view,resource:servers,name:github']\n"
        "cases:\n  - {subject: User:a, action: get, kind: servers, name: github, expect: allow}\n"
    )
    result = runner.invoke(app, ["policy", "test", str(table)])
    assert result.exit_code == 3
    assert "write `object: github`" in result.output


def test_explain_invalid_input_exits_3() -> None:
    result = runner.invoke(app, ["policy", "explain", "Usr:x", "get", "servers"])
    assert result.exit_code == 3
    assert "invalid request" in result.output


def test_who_can_lists_paths_and_denied_subjects() -> None:
    args = ["policy", "who-can", "create", "mcptokens", "-o", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["kind"] == "WhoCan"
    (admins,) = body["allowed"]
    assert admins["subject"] == "Group:admins" and admins["path"] == ["Group:admins", "role:admin"]
    assert admins["line"]["source"].endswith("bindings.csv:10")
    text = runner.invoke(app, ["policy", "who-can", "create", "mcptokens"])
    assert "Group:admins -> role:admin" in text.output


def test_diff_fail_on_new_access_exits_3(tmp_path: Path) -> None:
    old = _copy_shipped(tmp_path / "old")
    new = _copy_shipped(tmp_path / "new")
    (new / "extra.csv").write_text("p, User:bob, web, servers, github, role:view, allow\n")
    same = runner.invoke(app, ["policy", "diff", str(old), str(old), "--fail-on-new-access"])
    assert same.exit_code == 0 and "+" not in same.output
    result = runner.invoke(app, ["policy", "diff", str(old), str(new), "--fail-on-new-access"])
    assert result.exit_code == 3
    assert "+ User:bob get servers/github in web" in result.output
    assert "project web: more permissive" in result.output
    body = json.loads(
        runner.invoke(app, ["policy", "diff", str(old), str(new), "-o", "json"]).output
    )
    # the server, and its tools, prompts and resources
    assert body["gained"] == 8 and body["lost"] == 0
    objects = [("servers", "github")]
    objects += [(kind, "github__(other)") for kind in ("tools", "prompts", "resources")]
    assert {(c["kind"], c["name"], c["verb"]) for c in body["changes"]} == {
        (kind, name, verb) for kind, name in objects for verb in ("get", "list")
    }
    assert body["changes"][0]["new"]["line"]["source"] == "new/extra.csv:1"


def test_coverage_threshold_and_junit(tmp_path: Path) -> None:
    spec = str(TABLES / "spec.yaml")
    result = runner.invoke(app, ["policy", "test", spec, "--coverage"])
    assert result.exit_code == 0, result.output
    assert "coverage:" in result.output and "uncovered" in result.output
    low = runner.invoke(app, ["policy", "test", spec, "--coverage", "--threshold", "100"])
    assert low.exit_code == 1 and "below the threshold" in low.output
    body = json.loads(
        runner.invoke(app, ["policy", "test", spec, "--coverage", "-o", "json"]).output
    )
    assert body["failed"] == 0 and 0 < body["coverage"]["covered"] < body["coverage"]["lines"]
    junit = runner.invoke(app, ["policy", "test", spec, "-o", "junit"])
    assert junit.output.startswith("<?xml") and "<testsuite " in junit.output


def test_fmt_check_and_rewrite(tmp_path: Path) -> None:
    d = tmp_path / "p"
    d.mkdir()
    (d / "a.csv").write_text("# c\n\n\np,User:a,*, servers ,*,role:view,allow   \n")
    check = runner.invoke(app, ["policy", "fmt", str(d), "--check"])
    assert check.exit_code == 1 and "would reformat" in check.output
    assert runner.invoke(app, ["policy", "fmt", str(d)]).exit_code == 0
    assert (d / "a.csv").read_text() == "# c\n\np, User:a, *, servers, *, role:view, allow\n"
    assert runner.invoke(app, ["policy", "fmt", str(d), "--check"]).exit_code == 0
    (d / "b.csv").write_text("p, User:a\n")
    bad = runner.invoke(app, ["policy", "fmt", str(d)])
    assert bad.exit_code == 3 and "b.csv:1" in bad.output
