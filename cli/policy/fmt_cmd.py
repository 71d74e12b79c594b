"""``mcpctl policy fmt [--check]``: rewrite the policy files in their canonical form."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from authz.fmt import formatted_files
from authz.policy import default_policy_dir
from cli.errors import ERROR
from cli.policy.common import app, emit_json, invalid_input
from cli.policy.output import Output


@app.command("fmt")
def fmt_cmd(
    directory: Annotated[Path | None, typer.Argument(help="policy directory to format")] = None,
    check: Annotated[
        bool, typer.Option("--check", help="change nothing; exit 1 if a file is not formatted")
    ] = False,
    output: Annotated[Output, typer.Option("-o", "--output")] = Output.text,
) -> None:
    """Normalise policy files: `p, a, b` spacing, trailing space, blank runs, final newline."""
    policy_dir = directory or default_policy_dir()
    with invalid_input():
        files = formatted_files(policy_dir)
    changed = [path for path, old, new in files if old != new]
    if not check:
        for path, old, new in files:
            if old != new:
                path.write_text(new, encoding="utf-8")
    if output is Output.json:
        emit_json(
            "FmtReport",
            {
                "check": check,
                "files": [str(p) for p, _, _ in files],
                "changed": [str(p) for p in changed],
            },
        )
    else:
        verb = "would reformat" if check else "reformatted"
        for path in changed:
            typer.echo(f"{verb} {path}")
        typer.echo(f"{len(changed)} of {len(files)} file(s) {verb}", err=True)
    if check and changed:
        raise typer.Exit(ERROR)
