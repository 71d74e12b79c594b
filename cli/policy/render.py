"""Text for the access documents, whoever answered them: the offline ``policy who-can``
and mcpd's ``auth who-can`` / ``auth can-i --list`` print the same JSON the same way."""

from __future__ import annotations

from typing import Any

import typer


def _where(line: dict[str, str] | None) -> str:
    return f"`{line['rule']}` ({line['source'] or 'runtime'})" if line else ""


def render_who_can(doc: dict[str, Any]) -> None:
    """A ``WhoCan`` document as text."""

    def line(a: dict[str, Any]) -> str:
        via = " -> ".join(a["path"])
        return "  ".join(
            x for x in (a["subject"].ljust(28), via, _where(a["line"]), a["note"] or "") if x
        )

    typer.echo(f"allowed ({len(doc['allowed'])}):")
    for a in doc["allowed"]:
        typer.echo(f"  {line(a)}")
    typer.echo(f"denied despite an allow ({len(doc['denied'])}):")
    for a in doc["denied"]:
        typer.echo(f"  {line(a)}")


def render_access_list(doc: dict[str, Any]) -> None:
    """An ``AccessList`` document as a table, like ``kubectl auth can-i --list``: one row
    per line, then the denies that override allows."""
    header = ("PROJECT", "KIND", "NAME", "VERBS", "VIA", "LINE")

    def rows(grants: list[dict[str, Any]]) -> list[tuple[str, ...]]:
        return [
            (
                g["project"] or "(none)",
                g["kind"],
                g["name"],
                ",".join(g["verbs"]) or "-",
                g["via"],
                _where(g["line"]),
            )
            for g in grants
        ]

    allowed, denied = rows(doc["allowed"]), rows(doc["denied"])
    table = [header, *allowed, *denied]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]

    def echo(row: tuple[str, ...]) -> None:
        typer.echo("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())

    scope = "every project" if doc["project"] is None else f"project {doc['project'] or '(none)'}"
    typer.echo(f"{doc['subject']} in {scope}: {len(allowed)} allowed, {len(denied)} denied")
    echo(header)
    for row in allowed:
        echo(row)
    if denied:
        typer.echo("denied (a deny overrides every allow it covers):")
        for row in denied:
            echo(row)
    if doc.get("note"):
        typer.echo(f"note: {doc['note']}")
