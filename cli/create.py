"""``create KIND NAME``: one object from command-line flags (a manifest is ``apply -f``).

``create mcptoken`` and ``create serviceaccount`` print the new token once, on stdout alone,
so that ``TOKEN=$(mcpctl create mcptoken ...)`` works. Instances cannot be created: mcpd
starts them.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from cli.errors import INVALID, fail
from cli.resources import READ_ONLY
from cli.state import State

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


__all__ = ["create"]
