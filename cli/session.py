"""``config``, ``login``, ``logout`` and ``auth whoami|can-i|who-can``."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
import yaml

from cli.config import Config, Context, config_path, public
from cli.errors import DENIED, INVALID, fail
from cli.policy.output import Output
from cli.policy.render import render_access_list, render_who_can
from cli.state import State, api_errors
from client import McpdClient

config = typer.Typer(help="Manage mcpd servers as named contexts.", no_args_is_help=True)
auth = typer.Typer(help="Who am I, and what may I do?", no_args_is_help=True)


@config.command("view")
def view() -> None:
    """Show the config (tokens masked)."""
    cfg = Config.load()
    data = {
        "file": str(config_path()),
        "currentContext": cfg.current,
        "contexts": {n: public(c) for n, c in sorted(cfg.contexts.items())},
    }
    typer.echo(yaml.safe_dump(data, sort_keys=False).rstrip())


@config.command("set-context")
def set_context(
    name: str,
    server: Annotated[str, typer.Option(help="mcpd URL, e.g. http://127.0.0.1:8420")],
    use: Annotated[bool, typer.Option("--use", help="also make it current")] = False,
) -> None:
    """Add or change a context."""
    if not server.startswith(("http://", "https://")):
        fail(f"--server `{server}` must start with http:// or https://", INVALID)
    cfg = Config.load()
    old = cfg.contexts.get(name)
    same = old is not None and old.server == server.rstrip("/")
    cfg.contexts[name] = Context(
        server=server.rstrip("/"),
        user=old.user if same and old else None,
        token=old.token if same and old else None,
    )
    if use:
        cfg.current = name
    cfg.save()
    typer.echo(f"context {name} -> {server}")


@config.command("use-context")
def use_context(name: str) -> None:
    cfg = Config.load()
    if name not in cfg.contexts:
        fail(f"no context `{name}`; contexts: {', '.join(sorted(cfg.contexts))}", INVALID)
    cfg.current = name
    cfg.save()
    typer.echo(f"using context {name}")


@config.command("get-contexts")
def get_contexts() -> None:
    cfg = Config.load()
    for name, ctx in sorted(cfg.contexts.items()):
        mark = "*" if name == cfg.current else " "
        typer.echo(f"{mark} {name}\t{ctx.server}\t{ctx.user or '-'}")


def login(
    ctx: typer.Context,
    username: Annotated[str, typer.Option("--username", "-u", prompt=True)],
    password_stdin: Annotated[bool, typer.Option(help="read the password from stdin")] = False,
) -> None:
    """Log in to mcpd; the session token is kept in the config file (mode 0600)."""
    state: State = ctx.obj
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True)
    target = state.context()
    with McpdClient(target.server) as c, api_errors():
        result = c.login(username, password)
    cfg = Config.load()
    name = state.context_name or cfg.current
    cfg.contexts[name] = Context(server=target.server, user=result["user"], token=result["token"])
    cfg.save()
    typer.echo(f"logged in to {target.server} as {result['user']} (until {result['expiresAt']})")


def logout(ctx: typer.Context) -> None:
    """End the session and forget its token."""
    state: State = ctx.obj
    target = state.context()
    if target.token:
        with state.client() as c:
            c.logout()
    cfg = Config.load()
    name = state.context_name or cfg.current
    if name in cfg.contexts:
        cfg.contexts[name].token = None
        cfg.save()
    typer.echo("logged out")


@auth.command("whoami")
def whoami(ctx: typer.Context) -> None:
    state: State = ctx.obj
    with state.client() as c:
        me = c.me()
    if me.get("serviceAccount"):
        typer.echo(f"serviceaccount {me['serviceAccount']}")
        return
    typer.echo(me["user"] or f"token {me['tokenName']} (project {me['project']})")


@auth.command("can-i")
def can_i(
    ctx: typer.Context,
    action: Annotated[
        str | None, typer.Argument(help="get, list, create, update, delete, run, logs, ...")
    ] = None,
    resource: Annotated[str | None, typer.Argument(help="KIND or KIND/NAME")] = None,
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    as_: Annotated[str | None, typer.Option("--as", help="another subject (impersonate)")] = None,
    list_: Annotated[
        bool, typer.Option("--list", help="everything the subject may do, with the lines")
    ] = False,
    output: Annotated[Output, typer.Option("-o", "--output", help="with --list")] = Output.text,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="exit code only")] = False,
) -> None:
    """Prints `yes` or `no - reason`; exit 0 when allowed, 2 when not. With `--list`, the
    access list (kind/name x verbs, with the deciding lines), like `kubectl auth can-i --list`."""
    from client import collection

    state: State = ctx.obj
    if list_:
        if action is not None or resource is not None:
            fail("--list takes no VERB or KIND: it lists everything", INVALID)
        with state.client() as c:
            doc = c.access_list(as_, project)
        if output is Output.json:
            typer.echo(json.dumps(doc, indent=2))
        else:
            render_access_list(doc)
        return
    if action is None or resource is None:
        fail("give VERB and KIND[/NAME], or --list", INVALID)
    kind, _, name = resource.partition("/")
    try:
        plural = (
            collection(kind)
            if kind not in ("tools", "prompts", "resources", "instances", "*")
            else kind
        )
    except ValueError as exc:
        fail(str(exc), INVALID)
    with state.client() as c:
        result = c.can_i(action, plural, name, project or "", as_)
    if not quiet:
        typer.echo("yes" if result["allowed"] else f"no - {result['reason']}")
    if not result["allowed"]:
        raise typer.Exit(DENIED)


@auth.command("who-can")
def who_can(
    ctx: typer.Context,
    verb: Annotated[str, typer.Argument(help="get, list, create, update, run, logs, ...")],
    resource: Annotated[str, typer.Argument(help="KIND or KIND/NAME, e.g. servers/github")],
    project: Annotated[str, typer.Option("--project", "-p", help="project of the request")] = "",
    output: Annotated[Output, typer.Option("-o", "--output")] = Output.text,
) -> None:
    """Every user, group and token mcpd allows a request, with the path and the deciding
    line (and those a deny overrides). Needs the who-can operation on the object."""
    from client import collection

    state: State = ctx.obj
    kind, _, name = resource.partition("/")
    try:
        plural = (
            collection(kind)
            if kind not in ("tools", "prompts", "resources", "instances", "*")
            else kind
        )
    except ValueError as exc:
        fail(str(exc), INVALID)
    with state.client() as c:
        doc = c.who_can(verb, plural, name, project)
    if output is Output.json:
        typer.echo(json.dumps(doc, indent=2))
    else:
        render_who_can(doc)
