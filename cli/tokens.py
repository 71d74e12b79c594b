"""The token commands: ``mcptoken revoke``, and ``serviceaccount rotate|revoke`` (a service
account's tokens rotate: a new one is minted while the old stay valid until revoked).
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.resources import live_tokens
from cli.state import State

mcptoken = typer.Typer(help="McpToken operations.", no_args_is_help=True)


@mcptoken.command("revoke")
def revoke(ctx: typer.Context, name: str) -> None:
    """Revoke a token at once."""
    state: State = ctx.obj
    with state.client() as c:
        c.revoke_token(name)
    typer.echo(f"mcptoken/{name} revoked")


serviceaccount = typer.Typer(
    help="Service account tokens: rotate (a second valid token) and revoke.",
    no_args_is_help=True,
)


@serviceaccount.command("rotate")
def rotate(
    ctx: typer.Context,
    name: str,
    ttl: Annotated[str, typer.Option(help="the token's life: never (default), 90d, ...")] = "never",
) -> None:
    """Mint a further token (printed once); the old ones stay valid until revoked."""
    state: State = ctx.obj
    with state.client() as c:
        created = c.mint_service_token(name, ttl)
    old = [p for p in live_tokens(created) if p != created["tokenPrefix"]]
    typer.echo(created["token"])
    typer.echo(
        f"serviceaccount/{name}: new token {created['tokenPrefix']}"
        + (
            f"; still valid: {', '.join(old)} (revoke when moved: `mcpctl serviceaccount "
            f"revoke {name} {old[0]}`)"
            if old
            else ""
        ),
        err=True,
    )


@serviceaccount.command("revoke")
def revoke_service_token(ctx: typer.Context, name: str, prefix: str) -> None:
    """Revoke one token of the account (PREFIX as `mcpctl describe serviceaccount` shows)."""
    state: State = ctx.obj
    with state.client() as c:
        c.revoke_service_token(name, prefix)
    typer.echo(f"serviceaccount/{name}: token {prefix} revoked")


__all__ = ["mcptoken", "serviceaccount"]
