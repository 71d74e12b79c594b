"""``mcpctl logs SERVER [-f] [--tail N]``: a server instance's stderr and mcpd's own events."""

from __future__ import annotations

from contextlib import closing
from typing import Annotated, Final

import typer

from cli.errors import INVALID, OK, fail
from cli.state import State
from client import McpdClient

#: mcpd keeps at most this many lines per server, and answers at most this many
MAX_TAIL: Final = 10_000


def complete_server(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion: the names of the servers the current context may list."""
    root = ctx.find_root().params
    state = State(context_name=root.get("context"), server_override=root.get("server"))
    try:
        target = state.context()
        if not target.token:
            return []
        with McpdClient(target.server, target.token, timeout=3.0) as c:
            return sorted(
                s["name"] for s in c.list("servers") if str(s["name"]).startswith(incomplete)
            )
    except Exception:  # completion must never print an error into the shell
        return []


def logs(
    ctx: typer.Context,
    server: Annotated[
        str, typer.Argument(help="the server's name", autocompletion=complete_server)
    ],
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="keep printing new lines until Ctrl-C")
    ] = False,
    tail: Annotated[
        int, typer.Option("--tail", help=f"start with the last N lines (0-{MAX_TAIL})")
    ] = 100,
) -> None:
    """Print a server instance's log: its stderr and mcpd's own events about it.

    Needs the `logs` operation. With -f it runs until Ctrl-C, or until mcpd ends the
    stream (when it stops).
    """
    if not 0 <= tail <= MAX_TAIL:
        fail(f"--tail {tail} is out of range: use 0 to {MAX_TAIL}", INVALID)
    state: State = ctx.obj
    try:
        with state.client() as c, closing(c.server_logs(server, tail, follow)) as lines:
            for line in lines:
                typer.echo(line)
    except KeyboardInterrupt:
        raise typer.Exit(OK) from None
