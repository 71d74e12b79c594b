"""``mcpctl``: the kubectl-style command line of mcpctl."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import apply, create, describe, logs, policy, resources, session, testmcp, tokens
from cli.errors import Commands
from cli.state import State

app = typer.Typer(
    help="mcpctl: run and secure MCP servers for a team.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=Commands,
)


@app.callback()
def _global(
    ctx: typer.Context,
    context: Annotated[str | None, typer.Option("--context", help="config context to use")] = None,
    server: Annotated[
        str | None, typer.Option("--server", envvar="MCPCTL_SERVER", help="mcpd URL override")
    ] = None,
    no_color: Annotated[bool, typer.Option("--no-color", help="plain output")] = False,
) -> None:
    ctx.obj = State(context_name=context, server_override=server, color=not no_color)


app.add_typer(policy.app, name="policy")
app.add_typer(session.config, name="config")
app.add_typer(session.auth, name="auth")
app.command("login")(session.login)
app.command("logout")(session.logout)
app.command("get")(resources.get)
app.command("delete")(resources.delete)
app.command("apply")(apply.apply)
app.command("describe")(describe.describe)
app.command("logs")(logs.logs)
app.add_typer(create.create, name="create")
app.add_typer(tokens.mcptoken, name="mcptoken")
app.add_typer(tokens.serviceaccount, name="serviceaccount")
app.add_typer(testmcp.app, name="test")


def main() -> None:
    app()
