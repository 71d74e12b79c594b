"""``get``, ``delete``, ``create``, ``mcptoken revoke`` and ``serviceaccount rotate|revoke``."""

from __future__ import annotations

import json
import sys
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


create = typer.Typer(help="Create an object.", no_args_is_help=True)


@create.command(
    "instance",
    hidden=True,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
@create.command(
    "instances",
    hidden=True,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def create_instance() -> None:
    """Instances cannot be created: say what to do instead."""
    fail(READ_ONLY, INVALID)


def _create(ctx: typer.Context, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    state: State = ctx.obj
    with state.client() as c:
        created = c.create(kind, body)
    typer.echo(f"{kind.rstrip('s')}/{created['name']} created")
    return created


def _pairs(values: list[str] | None, what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for v in values or []:
        key, sep, val = v.partition("=")
        if not sep or not key:
            fail(f"{what} `{v}` is not KEY=VALUE", INVALID)
        if val.startswith("secret:"):
            out[key] = {"secretRef": val.removeprefix("secret:")}
        else:
            out[key] = val
    return out


@create.command("project")
def create_project(
    ctx: typer.Context,
    name: str,
    description: Annotated[str, typer.Option()] = "",
    server: Annotated[list[str] | None, typer.Option("--server", help="attach a server")] = None,
    proxy_model: Annotated[
        str, typer.Option(help="passthrough, paginate or summarize")
    ] = "passthrough",
) -> None:
    _create(
        ctx,
        "projects",
        {
            "name": name,
            "description": description,
            "servers": server or [],
            "proxyModel": proxy_model,
        },
    )


@create.command("server")
def create_server(
    ctx: typer.Context,
    name: str,
    transport: Annotated[str, typer.Option(help="stdio or http")] = "stdio",
    command: Annotated[str | None, typer.Option(help="stdio: the program to run")] = None,
    arg: Annotated[list[str] | None, typer.Option("--arg", help="stdio: an argument")] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="stdio: KEY=VALUE or KEY=secret:NAME/KEY")
    ] = None,
    url: Annotated[str | None, typer.Option(help="http: the MCP endpoint")] = None,
    header: Annotated[
        list[str] | None, typer.Option("--header", help="http: NAME=VALUE or NAME=secret:S/K")
    ] = None,
    description: Annotated[str, typer.Option()] = "",
) -> None:
    body: dict[str, Any] = {"name": name, "description": description, "transport": transport}
    if transport == "stdio":
        if not command:
            fail("a stdio server needs --command", INVALID)
        body["stdio"] = {"command": command, "args": arg or [], "env": _pairs(env, "--env")}
    elif transport == "http":
        if not url:
            fail("an http server needs --url", INVALID)
        body["http"] = {"url": url, "headers": _pairs(header, "--header")}
    else:
        fail(f"transport `{transport}` is unknown: use stdio or http", INVALID)
    _create(ctx, "servers", body)


@create.command("user")
def create_user(
    ctx: typer.Context,
    name: str,
    display_name: Annotated[str, typer.Option()] = "",
    password_stdin: Annotated[bool, typer.Option(help="read the password from stdin")] = False,
) -> None:
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    _create(ctx, "users", {"name": name, "displayName": display_name, "password": password})


@create.command("group")
def create_group(
    ctx: typer.Context,
    name: str,
    member: Annotated[list[str] | None, typer.Option("--member", help="a user name")] = None,
) -> None:
    _create(ctx, "groups", {"name": name, "members": member or []})


@create.command("secret")
def create_secret(
    ctx: typer.Context,
    name: str,
    from_literal: Annotated[list[str], typer.Option("--from-literal", help="KEY=VALUE")],
) -> None:
    data = {}
    for v in from_literal:
        key, sep, val = v.partition("=")
        if not sep or not key:
            fail(f"--from-literal `{v}` is not KEY=VALUE", INVALID)
        data[key] = val
    _create(ctx, "secrets", {"name": name, "data": data})


@create.command("rbac")
def create_rbac(
    ctx: typer.Context,
    name: str,
    subject: Annotated[list[str], typer.Option("--subject", help="User:NAME or Group:NAME")],
    role_bindings: Annotated[
        list[str],
        typer.Option(
            "--roleBindings",
            "--role-bindings",
            help="role:ROLE,resource:KIND[,name:N][,project:P] or action:OP[,project:P]",
        ),
    ],
) -> None:
    _create(ctx, "rbac", {"name": name, "subjects": subject, "roleBindings": role_bindings})


@create.command("mcptoken")
def create_mcptoken(
    ctx: typer.Context,
    name: str,
    project: Annotated[str, typer.Option("--project", "-p", help="the one project it acts in")],
    ttl: Annotated[str, typer.Option(help="30d, 12h, never or an ISO date")] = "30d",
    rbac: Annotated[str | None, typer.Option(help="empty (default) or clone")] = None,
    bind: Annotated[list[str] | None, typer.Option("--bind", help="a role binding")] = None,
    description: Annotated[str, typer.Option()] = "",
) -> None:
    """Create a token; its value is printed once."""
    body: dict[str, Any] = {
        "name": name,
        "project": project,
        "ttl": ttl,
        "description": description,
        "bindings": bind or [],
    }
    if rbac is not None:
        if rbac not in ("empty", "clone"):
            fail(f"--rbac `{rbac}` is unknown: use empty or clone", INVALID)
        body["rbac"] = rbac
    state: State = ctx.obj
    with state.client() as c:
        created = c.create("mcptokens", body)
    typer.echo(created["token"])
    typer.echo(
        f"mcptoken/{name} created in project {project} ({created['rbacMode']}); "
        "copy the token now: it will not be shown again",
        err=True,
    )


mcptoken = typer.Typer(help="McpToken operations.", no_args_is_help=True)


@mcptoken.command("revoke")
def revoke(ctx: typer.Context, name: str) -> None:
    """Revoke a token at once."""
    state: State = ctx.obj
    with state.client() as c:
        c.revoke_token(name)
    typer.echo(f"mcptoken/{name} revoked")


@create.command("serviceaccount")
def create_serviceaccount(
    ctx: typer.Context,
    name: str,
    description: Annotated[str, typer.Option()] = "",
    ttl: Annotated[str, typer.Option(help="the token's life: never (default), 90d, ...")] = "never",
) -> None:
    """Create a service account (a machine identity, e.g. mcplocal's); its first token is
    printed once. It holds nothing until bound: `mcpctl create rbac NAME --subject
    ServiceAccount:NAME --roleBindings ...`."""
    state: State = ctx.obj
    body = {"name": name, "description": description, "tokenTtl": ttl}
    with state.client() as c:
        created = c.create("serviceaccounts", body)
    typer.echo(created["token"])
    typer.echo(
        f"serviceaccount/{name} created with token {created['tokenPrefix']}; copy the token "
        "now: it will not be shown again",
        err=True,
    )


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
