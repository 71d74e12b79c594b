"""``mcpctl policy lint``: findings as text, JSON, SARIF or GitHub annotations."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from authz.lint import LintIssue, format_issue, lint
from authz.lint.issues import issue_to_json
from authz.policy import default_model_path, default_policy_dir
from cli.errors import INVALID
from cli.policy.common import ModelPath, app, emit_json


class LintOutput(StrEnum):
    text = "text"
    json = "json"
    sarif = "sarif"
    github = "github"


@app.command("lint")
def lint_cmd(
    directory: Annotated[Path | None, typer.Argument(help="policy directory to check")] = None,
    model: ModelPath = None,
    strict: Annotated[bool, typer.Option(help="treat warnings as errors")] = False,
    output: Annotated[LintOutput, typer.Option("-o", "--output")] = LintOutput.text,
) -> None:
    """Check policy files: shapes, unknown names, duplicates, shadowing, denies, cycles."""
    policy_dir = directory or default_policy_dir()
    issues = lint(policy_dir, model or default_model_path())
    errors = [i for i in issues if i.severity == "error"]
    if output is LintOutput.json:
        emit_json(
            "LintReport",
            {
                "policyDir": str(policy_dir),
                "errors": len(errors),
                "warnings": len(issues) - len(errors),
                "issues": [issue_to_json(i) for i in issues],
            },
        )
    elif output is LintOutput.sarif:
        typer.echo(json.dumps(sarif(issues), indent=2))
    elif output is LintOutput.github:
        for issue in issues:
            typer.echo(github_annotation(issue))
    else:
        for issue in issues:
            typer.echo(format_issue(issue))
        typer.echo(
            f"{policy_dir}: {len(errors)} error(s), {len(issues) - len(errors)} warning(s)",
            err=True,
        )
    if errors or (strict and issues):
        raise typer.Exit(INVALID)


def github_annotation(issue: LintIssue) -> str:
    """A GitHub Actions workflow command: ``::error file=F,line=N,title=CODE::message``."""
    path, line = issue.location
    where = f"file={path},line={line}" if line else f"file={path}"
    message = issue.message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return f"::{issue.severity} {where},title={issue.code}::{message}"


def sarif(issues: list[LintIssue]) -> dict[str, Any]:
    """SARIF 2.1.0, one run of tool ``mcpctl-policy-lint``, one result per finding."""
    codes = sorted({i.code for i in issues})
    results = []
    for issue in issues:
        path, line = issue.location
        location: dict[str, Any] = {"artifactLocation": {"uri": path}}
        if line:
            location["region"] = {"startLine": line}
        results.append(
            {
                "ruleId": issue.code,
                "level": issue.severity,
                "message": {"text": issue.message},
                "locations": [{"physicalLocation": location}],
            }
        )
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "mcpctl-policy-lint",
                        "informationUri": "https://github.com/mcpctl/mcpctl",
                        "rules": [{"id": code} for code in codes],
                    }
                },
                "results": results,
            }
        ],
    }
