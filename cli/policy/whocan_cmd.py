"""``mcpctl policy who-can VERB KIND[/NAME]``: every subject allowed, with path and line."""

from __future__ import annotations

from typing import Annotated

import typer

from authz import Authorizer
from authz.vocabulary import NO_PROJECT
from authz.whocan import Access, who_can
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


def access_json(a: Access) -> dict[str, object]:
    return {
        "subject": a.subject,
        "allowed": a.allowed,
        "path": list(a.path),
        "line": rule_json(a.rule),
        "note": a.note or None,
    }


def _line(a: Access) -> str:
    where = f"`{a.rule}` ({a.rule.source or 'runtime'})" if a.rule else ""
    via = " -> ".join(a.path)
    return "  ".join(x for x in (a.subject.ljust(28), via, where, a.note) if x)


@app.command("who-can")
def who_can_cmd(
    verb: Annotated[str, typer.Argument(help="verb: get, list, create, update, run, logs, ...")],
    resource: Annotated[str, typer.Argument(help="KIND or KIND/NAME, e.g. servers/github")],
    project: Annotated[
        str, typer.Option("--project", "-p", help="project of the request")
    ] = NO_PROJECT,
    policy_dir: PolicyDir = None,
    model: ModelPath = None,
    output: Annotated[Output, typer.Option("-o", "--output")] = Output.text,
) -> None:
    """Every user, group and token allowed a request (and those a deny overrides)."""
    kind, name = split_resource(resource)
    with invalid_input():
        authorizer = Authorizer(policy_dir=policy_dir, model_path=model)
        result = who_can(authorizer, verb, kind, name, project)
    if output is Output.json:
        emit_json(
            "WhoCan",
            {
                "request": {"verb": verb, "kind": kind, "name": name, "project": project},
                "allowed": [access_json(a) for a in result.allowed],
                "denied": [access_json(a) for a in result.denied],
            },
        )
        return
    typer.echo(f"allowed ({len(result.allowed)}):")
    for a in result.allowed:
        typer.echo(f"  {_line(a)}")
    typer.echo(f"denied despite an allow ({len(result.denied)}):")
    for a in result.denied:
        typer.echo(f"  {_line(a)}")
