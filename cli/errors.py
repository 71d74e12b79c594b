"""The CLI's exit codes (SPEC §8) and the one way a command fails."""

from __future__ import annotations

from typing import Any, Final, NoReturn

import typer
from typer._click import Context
from typer._click.exceptions import UsageError  # typer vendors click: its own, not click's
from typer.core import TyperGroup

OK: Final = 0
ERROR: Final = 1
DENIED: Final = 2
INVALID: Final = 3


def fail(message: str, code: int = ERROR) -> NoReturn:
    """Print ``error: MESSAGE`` to stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


class Commands(TyperGroup):
    """The command group of mcpctl: a usage error (unknown option, missing argument, bad
    value) exits with INVALID, as SPEC §8 says, not Click's 2 (which is DENIED here)."""

    def make_context(
        self, info_name: str | None, args: list[str], *rest: Any, **kwargs: Any
    ) -> Context:
        # kubectl's `--dry-run` alone means `--dry-run=server` here (Typer has no options
        # with an optional value)
        args = ["--dry-run=server" if a == "--dry-run" else a for a in args]
        try:
            return super().make_context(info_name, args, *rest, **kwargs)
        except UsageError as exc:
            exc.exit_code = INVALID
            raise

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            exc.exit_code = INVALID
            raise
