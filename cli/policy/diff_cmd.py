"""``mcpctl policy diff OLD NEW``: the decisions two policy directories disagree on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from authz import Authorizer
from authz.decision import Decision
from authz.diff import OTHER, Change, diff
from cli.errors import INVALID
from cli.policy.common import ModelPath, app, emit_json, invalid_input, rule_json
from cli.policy.output import Output


def _decision_json(d: Decision) -> dict[str, Any]:
    return {"allowed": d.allowed, "reason": d.reason, "line": rule_json(d.rule)}


def change_json(c: Change) -> dict[str, Any]:
    return {
        "subject": c.subject,
        "project": c.project,
        "kind": c.kind,
        "name": c.name,
        "verb": c.verb,
        "change": "gained" if c.gained else "lost",
        "old": _decision_json(c.old),
        "new": _decision_json(c.new),
    }


def _show(value: str, empty: str) -> str:
    return (
        empty
        if value == ""
        else ("(any other)" if value == OTHER else value.replace(OTHER, "(any other)"))
    )


@app.command("diff")
def diff_cmd(
    old: Annotated[Path, typer.Argument(help="the policy directory before")],
    new: Annotated[Path, typer.Argument(help="the policy directory after")],
    model: ModelPath = None,
    fail_on_new_access: Annotated[
        bool, typer.Option("--fail-on-new-access", help="exit 3 when any access is gained")
    ] = False,
    output: Annotated[Output, typer.Option("-o", "--output")] = Output.text,
) -> None:
    """Every (subject, project, kind, name, verb) decision gained or lost, with the lines."""
    with invalid_input():
        result = diff(
            Authorizer(policy_dir=old, model_path=model),
            Authorizer(policy_dir=new, model_path=model),
        )
    if output is Output.json:
        emit_json(
            "PolicyDiff",
            {
                "old": str(old),
                "new": str(new),
                "gained": len(result.gained),
                "lost": len(result.lost),
                "verdicts": [{"project": p, "verdict": v} for p, v in result.verdicts.items()],
                "changes": [change_json(c) for c in result.changes],
            },
        )
    else:
        for c in result.changes:
            sign = "+" if c.gained else "-"
            obj = c.kind if c.name == "" else f"{c.kind}/{_show(c.name, '')}"
            proj = _show(c.project, "(no project)")
            line = c.new.rule if c.gained else c.old.rule
            other = c.old if c.gained else c.new
            typer.echo(f"{sign} {c.subject} {c.verb} {obj} in {proj}")
            if line is not None:
                typer.echo(
                    f"    {'allowed by' if c.gained else 'was allowed by'} `{line}` ({line.source})"
                )
            typer.echo(f"    {'before' if c.gained else 'now'}: {other.reason}")
        for project, verdict in result.verdicts.items():
            typer.echo(f"project {_show(project, '(no project)')}: {verdict}")
        typer.echo(f"{len(result.gained)} gained, {len(result.lost)} lost", err=True)
    if fail_on_new_access and result.gained:
        raise typer.Exit(INVALID)
