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
    assert body["source"].endswith("deny.csv:8")


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
