"""``describe``: one object with what relates to it."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.output import cell
from cli.resources import plural_of
from cli.state import State
from client import Denied, McpdClient, NotFound


def describe(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Argument()],
) -> None:
    """Show one object with what relates to it (a project's servers and tokens, ...)."""
    state: State = ctx.obj
    plural = plural_of(kind)
    related: list[tuple[str, list[str] | str]] = []
    with state.client() as c:
        obj = c.get(plural, name)
        if plural == "projects":
            related.append(("Servers", [s["name"] for s in c.project_servers(name)]))
            tokens = list(c.list("mcptokens", project=name))
            related.append(
                (
                    "McpTokens",
                    [
                        f"{t['name']}  {t['rbacMode']}  expires {t['expiresAt'] or 'never'}"
                        + ("  REVOKED" if t["revokedAt"] else "")
                        for t in tokens
                    ],
                )
            )
        elif plural == "servers":
            related.append(("Projects", _server_projects(c, name)))
            related.append(("Instance", _instance_lines(c, name)))
        elif plural == "serviceaccounts":
            related.append(
                (
                    "Tokens",
                    [
                        f"{t['prefix']}  created {t['createdAt']} by {t['createdBy']}  "
                        f"last used {t['lastUsedAt'] or 'never'}"
                        + (f"  expires {t['expiresAt']}" if t["expiresAt"] else "")
                        + ("  REVOKED" if t["revokedAt"] else "")
                        for t in obj.get("tokens") or []
                    ],
                )
            )
        elif plural == "mcptokens":
            related.append(("Bindings", obj.get("bindings") or ["(none: rbac mode empty)"]))
    shown = {k: v for k, v in obj.items() if k not in ("bindings", "tokens")}
    width = max(len(k) for k in ("kind", *shown)) + 3  # the longest label, a colon, 2 spaces
    typer.echo(f"{'Kind:':<{width}}{plural}")
    for key, value in shown.items():
        label = f"{key}:".ljust(width)
        if isinstance(value, dict):
            typer.echo(label)
            for k, v in value.items():
                typer.echo(f"  {k}: {cell(v)}")
        else:
            typer.echo(f"{label}{cell(value)}")
    for title, lines in related:
        if isinstance(lines, str):
            typer.echo(f"{title}: {lines}")
            continue
        typer.echo(f"{title}:")
        for line in lines or ["(none)"]:
            typer.echo(f"  {line}")


def _server_projects(c: McpdClient, server: str) -> list[str] | str:
    """The projects a server is in, for `describe`; a string when the caller may not list them."""
    try:
        return [p["name"] for p in c.list("projects") if server in p.get("servers", [])]
    except (Denied, NotFound):
        return "(not visible)"


def _instance_lines(c: McpdClient, server: str) -> list[str] | str:
    """A server's instance status for `describe`; a string when the caller may not see it."""
    try:
        inst = c.instance(server)
    except (Denied, NotFound):
        return "(not visible)"
    fields = ("status", "health", "restarts", "pid", "startedAt", "lastError")
    return [f"{f + ':':<11}{cell(inst.get(f))}" for f in fields]
