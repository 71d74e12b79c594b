"""``mcpctl policy``: the security team's offline loop over the policy files.

``lint`` checks the files, ``test`` runs decision tables against them, ``explain``
shows which line decides a request and why. None of them needs mcpd.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from authz import Authorizer, AuthzError
from authz.decision_table import format_result, load_table, run_table
from authz.lint import format_issue, lint
from authz.policy import check_rule, default_model_path, default_policy_dir
from authz.vocabulary import NO_PROJECT
from cli.errors import DENIED, ERROR, INVALID, fail

app = typer.Typer(help="Lint, test and explain the authorization policy (offline).")


class Output(StrEnum):
    text = "text"
    json = "json"


PolicyDir = Annotated[
    Path | None,
    typer.Option(
        "--policy-dir", help="policy files (default: $MCPCTL_POLICY_DIR or the shipped ones)"
    ),
]
ModelPath = Annotated[
    Path | None,
    typer.Option("--model", help="model file (default: $MCPCTL_MODEL or the shipped one)"),
]


@app.command("lint")
def lint_cmd(
    directory: Annotated[Path | None, typer.Argument(help="policy directory to check")] = None,
    model: ModelPath = None,
    strict: Annotated[bool, typer.Option(help="treat warnings as errors")] = False,
    output: Annotated[Output, typer.Option("-o", "--output")] = Output.text,
) -> None:
    """Check policy files: shapes, unknown roles/kinds/operations, duplicates, shadowing."""
    policy_dir = directory or default_policy_dir()
    issues = lint(policy_dir, model or default_model_path())
    errors = [i for i in issues if i.severity == "error"]
    if output is Output.json:
        typer.echo(json.dumps([i.__dict__ for i in issues], indent=2))
    else:
        for issue in issues:
            typer.echo(format_issue(issue))
        typer.echo(
            f"{policy_dir}: {len(errors)} error(s), {len(issues) - len(errors)} warning(s)",
            err=True,
        )
    if errors or (strict and issues):
        raise typer.Exit(INVALID)


@app.command("test")
def run_tables(
    files: Annotated[list[Path], typer.Argument(help="decision table YAML files")],
    policy_dir: PolicyDir = None,
    model: ModelPath = None,
) -> None:
    """Run decision tables (requests with their expected allow/deny) against the policy."""
    failed = 0
    for path in files:
        try:
            table = load_table(path)
        except AuthzError as exc:
            fail(str(exc), INVALID)
        result = run_table(table, policy_dir=policy_dir, model_path=model)
        typer.echo(format_result(result))
        failed += len(result.failures)
    if failed:
        raise typer.Exit(ERROR)


@app.command("explain")
def explain_cmd(
    subject: Annotated[str, typer.Argument(help="User:NAME, Group:NAME or McpToken:SHA")],
    action: Annotated[
        str, typer.Argument(help="verb: get, list, create, update, delete, run, logs, ...")
    ],
    resource: Annotated[str, typer.Argument(help="KIND or KIND/NAME, e.g. servers/github")],
    project: Annotated[
        str, typer.Option("--project", "-p", help="project of the request")
    ] = NO_PROJECT,
    bind: Annotated[
        list[str] | None,
        typer.Option(
            "--bind",
            help="extra binding as SUBJECT=BINDING, e.g. User:bob=role:view,resource:servers",
        ),
    ] = None,
    member: Annotated[
        list[str] | None,
        typer.Option("--member", help="extra group membership as MEMBER=GROUP"),
    ] = None,
    policy_dir: PolicyDir = None,
    model: ModelPath = None,
    output: Annotated[Output, typer.Option("-o", "--output")] = Output.text,
) -> None:
    """Which policy line allows or denies a request, and why. Exit 0 allowed, 2 denied."""
    kind, _, name = resource.partition("/")
    try:
        authorizer = Authorizer(policy_dir=policy_dir, model_path=model)
        extra = []
        for spec in bind or []:
            sub, sep, text = spec.partition("=")
            if not sep:
                fail(f"--bind `{spec}` is not SUBJECT=BINDING", INVALID)
            extra.append(authorizer.parse_binding(text).to_rule(sub.strip(), "--bind"))
        for spec in member or []:
            child, sep, group = spec.partition("=")
            if not sep:
                fail(f"--member `{spec}` is not MEMBER=GROUP", INVALID)
            extra.append(check_rule("g", (child.strip(), group.strip()), "--member"))
        authorizer.apply(added=extra)
    except AuthzError as exc:
        fail(str(exc), INVALID)
    e = authorizer.explain(subject, project, kind, name, action)
    if output is Output.json:
        typer.echo(
            json.dumps(
                {
                    "allowed": e.decision.allowed,
                    "reason": e.decision.reason,
                    "rule": str(e.decision.rule) if e.decision.rule else None,
                    "source": e.decision.rule.source if e.decision.rule else None,
                    "subjects": list(e.subjects),
                    "acts": list(e.acts),
                    "allows": [{"rule": str(r), "source": r.source} for r in e.allows],
                    "denies": [{"rule": str(r), "source": r.source} for r in e.denies],
                    "notes": list(e.notes),
                },
                indent=2,
            )
        )
    else:
        verdict = "yes" if e.decision.allowed else "no"
        typer.echo(f"{verdict} - {e.decision.reason}")
        typer.echo(f"  subject and its groups: {', '.join(e.subjects)}")
        typer.echo(f"  roles that include {action}: {', '.join(e.acts)}")
        for label, rules in (("allow", e.allows), ("deny", e.denies)):
            for r in rules:
                typer.echo(f"  matching {label}: {r}  [{r.source or 'runtime'}]")
        for note in e.notes:
            typer.echo(f"  note: {note}")
    if not e.decision.allowed:
        raise typer.Exit(DENIED)
