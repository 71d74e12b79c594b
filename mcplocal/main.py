"""mcplocal: the authorizing MCP proxy.

serve: Streamable HTTP at /mcp for McpToken holders (machine clients).

stdio --project P: MCP on stdin/stdout for one user (Claude Code), as `mcpctl login`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click import Context
from typer._click.exceptions import UsageError  # typer vendors click: its own, not click's
from typer.core import TyperGroup

INVALID = 3  # SPEC §8: invalid input, usage errors included (not Click's 2)


class Commands(TyperGroup):
    """mcplocal's command group: a usage error exits with INVALID."""

    def make_context(self, *args: Any, **kwargs: Any) -> Context:
        try:
            return super().make_context(*args, **kwargs)
        except UsageError as exc:
            exc.exit_code = INVALID
            raise

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            exc.exit_code = INVALID
            raise


app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, cls=Commands)


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"mcplocal: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on")] = None,
    mcpd: Annotated[str | None, typer.Option("--mcpd", help="mcpd's URL")] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="pipeline cache (default: $MCPLOCAL_CACHE_DIR, /var/lib/mcplocal/cache, or "
            "the user cache dir when that is not writable)"
        ),
    ] = None,
) -> None:
    """Serve the proxy over Streamable HTTP at /mcp (McpToken bearer selects the project)."""
    from pydantic import ValidationError

    from mcplocal.app import create_app
    from mcplocal.cache import CacheError, FileCache
    from mcplocal.settings import McpdCredential, Settings
    from upstream import serving

    given = {"host": host, "port": port, "mcpd_url": mcpd, "cache_dir": cache_dir}
    overrides: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    try:
        settings = Settings(**overrides)
        credential = McpdCredential(
            settings.mcpd_url,
            token=settings.mcpd_token.get_secret_value() if settings.mcpd_token else None,
            user=settings.mcpd_user,
            password=settings.mcpd_password.get_secret_value() if settings.mcpd_password else None,
        )
    except (ValidationError, ValueError) as exc:
        _fail(str(exc), 3)
    try:  # a clear message now, not a traceback from the server's start-up
        FileCache(settings.cache_dir, max_bytes=settings.cache_max_bytes)
    except CacheError as exc:
        _fail(str(exc), 1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not settings.log_http_requests:  # a line for each call's hop to mcpd: on request only
        logging.getLogger("httpx2").setLevel(logging.WARNING)
    serving.serve(
        create_app(settings, credential),
        settings.host,
        settings.port,
        trusted_proxies=settings.trusted_proxies,
    )


@app.command()
def stdio(
    project: Annotated[str, typer.Option(help="the project whose servers to serve")],
    context: Annotated[str | None, typer.Option(help="mcpctl config context")] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="pipeline cache (default: user cache dir)")
    ] = None,
) -> None:
    """Speak MCP on stdin/stdout for the logged-in user (`mcpctl login`)."""
    import anyio
    import platformdirs

    from client.login import saved_login

    try:
        ctx = saved_login(context)
    except ValueError as exc:
        _fail(str(exc), 3)
    if not ctx.token:
        _fail("not logged in: run `mcpctl login` first", 1)
    assert ctx.token is not None
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    cache = cache_dir or Path(platformdirs.user_cache_dir("mcplocal", appauthor=False))
    from pydantic import ValidationError

    from mcplocal.cache import CacheError, FileCache
    from mcplocal.settings import Settings
    from mcplocal.stdio import run_stdio

    try:
        FileCache(cache)
        settings = Settings()  # the audit spool's (MCPLOCAL_AUDIT_SPOOL_*)
    except CacheError as exc:
        _fail(str(exc), 1)
    except ValidationError as exc:
        _fail(str(exc), 3)

    try:
        anyio.run(run_stdio, ctx.server, ctx.token, project, cache, settings)
    except RuntimeError as exc:  # a clear message for what a user can fix
        _fail(str(exc), 1)


def main() -> None:
    app()
