"""``mcpctl policy who-can VERB KIND[/NAME]``: every subject allowed, with path and line."""

from __future__ import annotations

from typing import Annotated

import typer

from authz import Authorizer
from authz.vocabulary import NO_PROJECT
from authz.whocan import who_can, who_can_json
from cli.policy.common import ModelPath, PolicyDir, app, emit_json, invalid_input, split_resource
from cli.policy.output import Output
from cli.policy.render import render_who_can


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
    doc = who_can_json(result)
    if output is Output.json:
        emit_json("WhoCan", doc)
        return
    render_who_can(doc)
