"""What every ``mcpctl policy`` command shares: the Typer app, options, output and errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from authz import AuthzError
from authz.wire import rule_json as rule_json  # every command's JSON names lines so
from cli.errors import INVALID, fail

app = typer.Typer(help="Lint, test, explain, diff and query the authorization policy (offline).")

#: The version of every ``-o json`` document; bumped only on an incompatible change.
SCHEMA_VERSION: Final = 1

PolicyDir = Annotated[
    Path | None,
    typer.Option(
        "--policy-dir", help="policy files (default: $MCPCTL_POLICY_DIR or the shipped ones)"
    ),
]
ModelPath = Annotated[
    Path | None,
    typer.Option("--model", help="model file (default: $MCPCTL_MODEL or the shipped one)"),
]


@contextmanager
def invalid_input() -> Iterator[None]:
    """Turn the engine's errors (bad files, names, tables) into ``error: ...`` and exit 3."""
    try:
        yield
    except AuthzError as exc:
        fail(str(exc), INVALID)


def emit_json(kind: str, body: dict[str, Any]) -> None:
    """One JSON document: ``{"schemaVersion": 1, "kind": KIND, ...body}``."""
    typer.echo(json.dumps({"schemaVersion": SCHEMA_VERSION, "kind": kind, **body}, indent=2))


def split_resource(resource: str) -> tuple[str, str]:
    kind, _, name = resource.partition("/")
    return kind, name
