"""``get`` and ``delete``: objects by kind - the kinds' names, the columns a table shows of
each, and manifests for ``-o json|yaml`` that ``apply -f`` takes back.

``create`` is :mod:`cli.create`; the token commands (``mcptoken revoke``,
``serviceaccount rotate|revoke``) are :mod:`cli.tokens`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
import yaml

from cli.apply import delete_file, manifest
from cli.errors import INVALID, fail
from cli.output import Format, busy, show
from cli.state import State
from client import collection

COLUMNS: dict[str, list[tuple[str, str]]] = {
    "users": [("name", "name"), ("display name", "displayName"), ("disabled", "disabled")],
    "groups": [("name", "name"), ("members", "members")],
    "projects": [
        ("name", "name"),
        ("servers", "servers"),
        ("proxy model", "proxyModel"),
        ("description", "description"),
    ],
    "servers": [("name", "name"), ("transport", "transport"), ("description", "description")],
    "secrets": [("name", "name"), ("keys", "keys")],
    "rbac": [("name", "name"), ("subjects", "subjects"), ("role bindings", "roleBindings")],
    "mcptokens": [
        ("name", "name"),
        ("project", "project"),
        ("prefix", "prefix"),
        ("mode", "rbacMode"),
        ("expires", "expiresAt"),
        ("last used", "lastUsedAt"),
        ("revoked", "revokedAt"),
    ],
    "serviceaccounts": [
        ("name", "name"),
        ("tokens", "tokens"),
        ("last used", "lastUsedAt"),
        ("description", "description"),
    ],
    "oauthgrants": [
        ("name", "name"),
        ("client", "client"),
        ("project", "project"),
        ("resource", "resource"),
        ("bindings", "bindings"),
        ("created", "createdAt"),
        ("last used", "lastUsedAt"),
        ("revoked", "revokedAt"),
    ],
    "auditevents": [
        ("time", "time"),
        ("subject", "subject"),
        ("action", "action"),
        ("kind", "kind"),
        ("name", "name"),
        ("project", "project"),
        ("outcome", "outcome"),
    ],
    "instances": [
        ("server", "server"),
        ("transport", "transport"),
        ("status", "status"),
        ("health", "health"),
        ("restarts", "restarts"),
        ("pid", "pid"),
        ("last error", "lastError"),
    ],
}

#: ``-o wide``: the table's columns and these
WIDE: dict[str, list[tuple[str, str]]] = {
    "auditevents": [
        ("token", "tokenName"),
        ("request id", "requestId"),
        ("policy revision", "policyRevision"),
        ("reason", "reason"),
    ],
}

#: ``--filter`` keys per kind (what the API's list takes besides paging)
FILTERS: dict[str, tuple[str, ...]] = {
    "auditevents": ("subject", "kind", "name", "project", "action", "outcome", "since", "until"),
}

#: kinds printed by ``-o json|yaml`` as manifests (kind, metadata, spec)
MANIFEST_KINDS = ("users", "groups", "serviceaccounts", "secrets", "servers", "projects", "rbac")

#: kinds whose objects are named by another field than ``name`` (for ``-o name``)
NAME_FIELD: dict[str, str] = {"instances": "server"}

#: a table shows at most this much of an instance's last error (json/yaml show it all)
LAST_ERROR_WIDTH = 60

READ_ONLY = (
    "instances are read-only: mcpd starts a server's instance on its first use and stops it "
    "when the server is deleted; see `mcpctl get instances` and `mcpctl logs SERVER`"
)

OutputOpt = Annotated[
    Format, typer.Option("-o", "--output", help="table, wide, json, yaml or name")
]


def plural_of(kind: str) -> str:
    try:
        return collection(kind)
    except ValueError as exc:
        fail(str(exc), INVALID)


def _truncate(text: str | None, width: int) -> str | None:
    """The first line of ``text``, at most ``width`` characters ("..." when cut)."""
    if not text or not text.strip():
        return None
    first, *more = text.strip().splitlines()
    if len(first) > width or more:
        return first[: width - 3].rstrip() + "..."
    return first


def _rows(kind: str, items: list[dict[str, Any]], fmt: Format) -> list[dict[str, Any]]:
    if kind == "secrets":
        return [{**i, "keys": sorted(i.get("data", {}))} for i in items]
    if kind == "serviceaccounts" and fmt in (Format.table, Format.wide):  # tokens still valid
        return [{**i, "tokens": live_tokens(i)} for i in items]
    if kind == "instances" and fmt in (Format.table, Format.wide):
        return [{**i, "lastError": _truncate(i.get("lastError"), LAST_ERROR_WIDTH)} for i in items]
    if kind == "auditevents" and fmt is Format.wide:  # the deciding line, where one did
        return [{**i, "reason": (i.get("detail") or {}).get("reason")} for i in items]
    return items


def live_tokens(account: dict[str, Any]) -> list[str]:
    """A service account's tokens that are not revoked, by prefix."""
    return [t["prefix"] for t in account.get("tokens") or [] if not t.get("revokedAt")]


def get(
    ctx: typer.Context,
    kind: Annotated[
        str, typer.Argument(help="user, group, project, server, secret, rbac, instance, ...")
    ],
    name: Annotated[str | None, typer.Argument(help="one object; all when omitted")] = None,
    output: OutputOpt = Format.table,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="only this project's servers or tokens")
    ] = None,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            help="KEY=VALUE passed to the API, e.g. outcome=deny or subject=bob for auditevents",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="at most this many objects", min=1)] = 10_000,
) -> None:
    """List objects of a kind, or show one."""
    state: State = ctx.obj
    plural = plural_of(kind)
    extra = {}
    for f in filters or []:
        key, sep, value = f.partition("=")
        if not sep or not key:
            fail(f"--filter `{f}` is not KEY=VALUE", INVALID)
        valid = FILTERS.get(plural, ())
        if key not in valid:
            fail(
                f"--filter key `{key}` is unknown for {plural}; "
                + (f"valid keys: {', '.join(valid)}" if valid else "it has no filters"),
                INVALID,
            )
        extra[key] = value
    with state.client() as c, busy(f"getting {plural}"):
        if name:
            items = [c.get(plural, name)]
        elif plural == "servers" and project:
            items = c.project_servers(project)
        elif plural == "instances":
            items = c.instances()
            if project:
                attached = {s["name"] for s in c.project_servers(project)}
                items = [i for i in items if i["server"] in attached]
        else:
            items = []
            params = {"project": project} if project else {}
            for item in c.list(plural, **params, **extra):
                items.append(item)
                if len(items) >= limit:
                    break
    if not items:
        if output in (Format.table, Format.wide):
            typer.echo("No resources found.", err=True)
            return
        if output is Format.name:
            return
    if output in (Format.json, Format.yaml) and plural in MANIFEST_KINDS:
        # a manifest per object, which `apply -f` takes back unchanged
        items = [m for i in items if (m := manifest(plural, i)) is not None]
        if output is Format.json or name:
            typer.echo(show_one(items[0] if name else items, output))
            return
        if output is Format.yaml:  # one YAML document each, as apply reads
            typer.echo(yaml.safe_dump_all(items, sort_keys=True, explicit_start=True).rstrip())
            return
    show(
        _rows(plural, items, output),
        COLUMNS[plural] + (WIDE.get(plural, []) if output is Format.wide else []),
        output,
        kind=kind.rstrip("s"),
        single=bool(name),
        color=state.color,
        name_field=NAME_FIELD.get(plural, "name"),
    )


def show_one(value: Any, output: Format) -> str:
    if output is Format.json:
        return json.dumps(value, indent=2, sort_keys=True)
    return yaml.safe_dump(value, sort_keys=True).rstrip()


def delete(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Argument()] = None,
    names: Annotated[list[str] | None, typer.Argument(help="one or more names")] = None,
    filename: Annotated[
        str | None,
        typer.Option("-f", "--filename", help="delete the objects of a manifest file (- stdin)"),
    ] = None,
) -> None:
    """Delete objects: KIND NAME..., or those of a manifest (-f FILE)."""
    state: State = ctx.obj
    if filename is not None:
        if kind or names:
            fail("give either KIND NAME... or -f FILE, not both", INVALID)
        delete_file(state, filename)
        return
    if not kind or not names:
        fail("give KIND NAME... or -f FILE", INVALID)
    plural = plural_of(kind)
    if plural == "instances":
        fail(READ_ONLY, INVALID)
    with state.client() as c:
        for name in names:
            c.delete(plural, name)
            done = "revoked" if plural == "oauthgrants" else "deleted"  # kept for the audit
            typer.echo(f"{kind.rstrip('s')}/{name} {done}")


__all__ = ["COLUMNS", "READ_ONLY", "delete", "get", "live_tokens", "plural_of", "show_one"]
