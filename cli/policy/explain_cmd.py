"""``mcpctl policy explain``: which line decides a request, and every line that matches."""

from __future__ import annotations

from typing import Annotated

import typer

from authz import Authorizer
from authz.decision import request_problem
from authz.policy import check_rule
from authz.vocabulary import NO_PROJECT
from cli.errors import DENIED, INVALID, fail
from cli.policy.common import (
    ModelPath,
    PolicyDir,
    app,
    emit_json,
    invalid_input,
    rule_json,
    split_resource,
)
from cli.policy.output import Output


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
    """Which policy line allows or denies a request, and why. Exit 0 allowed, 2 denied,
    3 invalid input."""
    kind, name = split_resource(resource)
    with invalid_input():
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
    problem = request_problem(subject, project, kind, name, action)
    if problem:
        fail(f"invalid request: {problem}", INVALID)
    e = authorizer.explain(subject, project, kind, name, action)
    if output is Output.json:
        emit_json(
            "Explanation",
            {
                "allowed": e.decision.allowed,
                "reason": e.decision.reason,
                "rule": str(e.decision.rule) if e.decision.rule else None,
                "source": e.decision.rule.source if e.decision.rule else None,
                "indexed": authorizer.indexed,
                "subjects": list(e.subjects),
                "acts": list(e.acts),
                "allows": [rule_json(r) for r in e.allows],
                "denies": [rule_json(r) for r in e.denies],
                "notes": list(e.notes),
            },
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
