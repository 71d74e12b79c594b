"""The CLI's exit codes (SPEC §8) and the one way a command fails."""

from __future__ import annotations

from typing import Final, NoReturn

import typer

OK: Final = 0
ERROR: Final = 1
DENIED: Final = 2
INVALID: Final = 3


def fail(message: str, code: int = ERROR) -> NoReturn:
    """Print ``error: MESSAGE`` to stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
