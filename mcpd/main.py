"""``mcpd``: the control-plane daemon's command line."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from mcpd.settings import Settings

app = typer.Typer(help="mcpd: the mcpctl control plane.", no_args_is_help=True)

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="database URL (default: $MCPD_DATABASE_URL or a SQLite file)"),
]


def _settings(**overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except ValueError as exc:
        typer.echo(f"error: invalid settings: {exc}", err=True)
        raise typer.Exit(3) from exc


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on")] = None,
    db: DbOption = None,
) -> None:
    """Run mcpd (migrating an empty database first)."""
    from mcpd.app import create_app
    from mcpd.isolation import harden_process
    from upstream import serving

    settings = _settings(host=host, port=port, database_url=db)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    harden_process()  # before anything starts a child: see mcpd.isolation
    typer.echo(f"mcpd: database {_redact(settings.database_url)}", err=True)
    serving.serve(
        create_app(settings),
        settings.host,
        settings.port,
        trusted_proxies=settings.trusted_proxies,
    )


@app.command("migrate")
def migrate_cmd(db: DbOption = None) -> None:
    """Bring the database schema up to date, then exit."""
    from mcpd.db import current_revision, make_engine, migrate

    settings = _settings(database_url=db)
    engine = make_engine(settings.database_url)
    migrate(engine)
    typer.echo(f"database {_redact(settings.database_url)} at revision {current_revision(engine)}")


@app.command()
def bootstrap(
    name: Annotated[str, typer.Option("--name", help="the first admin's user name")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
    db: DbOption = None,
) -> None:
    """Create the first admin (member of group `admins`) in an empty database."""
    from mcpd.bootstrap import bootstrap_admin
    from mcpd.db import make_engine, migrate
    from mcpd.runtime import build_runtime

    settings = _settings(database_url=db)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    engine = make_engine(settings.database_url)
    migrate(engine)
    rt = build_runtime(settings, engine)
    try:
        with rt.sessions() as session:
            created = bootstrap_admin(session, rt.authorizer, name, password)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from exc
    if not created:
        typer.echo(
            "error: the database already has users; bootstrap only fills an empty one", err=True
        )
        raise typer.Exit(1)
    if engine.dialect.name == "postgresql":  # a running mcpd reloads its policy at once
        from mcpd.replication import notify_reload

        notify_reload(settings.database_url, "bootstrap")
    # (on SQLite a running mcpd notices the commit within a second: mcpd.replication)
    typer.echo(f"created admin {name}")


def _redact(url: str) -> str:
    """A database URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    app()
