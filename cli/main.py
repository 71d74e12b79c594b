"""``mcpctl``: the kubectl-style command line of mcpctl."""

from __future__ import annotations

import typer

from cli import policy

app = typer.Typer(
    help="mcpctl: run and secure MCP servers for a team.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(policy.app, name="policy")


def main() -> None:
    app()
