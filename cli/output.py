"""Printing objects: a table on a terminal, plain columns when piped, or json/yaml/name."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

import typer
import yaml


class Format(StrEnum):
    table = "table"
    wide = "wide"  # the table with more columns (where a kind has them)
    json = "json"
    yaml = "yaml"
    name = "name"


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        # items that hold commas themselves (role bindings) are kept apart by `; `
        sep = "; " if any("," in str(v) for v in value) else ","
        return sep.join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def show(
    items: Sequence[dict[str, Any]],
    columns: Sequence[tuple[str, str]],
    fmt: Format,
    *,
    kind: str,
    single: bool = False,
    color: bool = True,
    name_field: str = "name",
) -> None:
    """Print ``items``; ``columns`` are (header, field) pairs for table output;
    ``-o name`` prints ``kind/<name_field>``."""
    if fmt is Format.json:
        typer.echo(json.dumps(items[0] if single else items, indent=2, sort_keys=True))
        return
    if fmt is Format.yaml:
        typer.echo(yaml.safe_dump(items[0] if single else items, sort_keys=True).rstrip())
        return
    if fmt is Format.name:
        for item in items:
            typer.echo(f"{kind}/{item[name_field]}")
        return
    rows = [[cell(item.get(f)) for _, f in columns] for item in items]
    if sys.stdout.isatty() and color:
        from rich.console import Console
        from rich.table import Table

        table = Table(box=None, header_style="bold")
        for header, _ in columns:
            table.add_column(header)
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, (h, _) in enumerate(columns)]
    typer.echo(
        "   ".join(h.upper().ljust(w) for (h, _), w in zip(columns, widths, strict=True)).rstrip()
    )
    for row in rows:
        typer.echo("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@contextmanager
def busy(message: str) -> Iterator[None]:
    """A spinner on stderr while work runs, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield
