"""The ``mcpctl test mcp`` command: check the arguments, run the steps, print, exit.

Exit codes: 0 when every step passes, 1 on an error, 2 when the server refuses
(no token, or the token rejected), 3 for invalid arguments.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from cli.errors import INVALID, fail
from cli.testmcp.probe import check_auth, check_http
from cli.testmcp.render import render_json, render_text
from cli.testmcp.report import Report, Run, Stop
from cli.testmcp.session import SessionSteps

__all__ = ["app", "mcp", "run_checks"]

app = typer.Typer(help="Check endpoints from the outside.", no_args_is_help=True)


async def run_checks(
    url: str, token: str | None, call: tuple[str, dict[str, Any]] | None, timeout: float
) -> Report:
    """Every step in order, each given ``timeout`` seconds; the first three stop on failure."""
    import httpx2

    run = Run(url, token, call, timeout)
    with suppress(Stop):
        async with httpx2.AsyncClient(timeout=timeout) as raw:
            probe = await check_http(run, raw)
            await check_auth(run, raw, probe)
        await SessionSteps(run).check()
    return run.report


@contextmanager
def _quiet_sdk() -> Iterator[None]:
    """Keep the SDK's and httpx2's own log lines out of the report."""
    loggers = [logging.getLogger(n) for n in ("mcp", "httpx2", "httpcore2")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _parse_call(call: str | None, args: str | None) -> tuple[str, dict[str, Any]] | None:
    if call is None:
        if args is not None:
            fail("--args needs --call TOOL", INVALID)
        return None
    if not call:
        fail("--call needs a tool name", INVALID)
    if args is None:
        return call, {}
    try:
        parsed = json.loads(args)
    except ValueError as exc:
        fail(f"--args is not valid JSON: {exc}", INVALID)
    if not isinstance(parsed, dict):
        kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
        fail(f"--args must be a JSON object, not {kinds.get(type(parsed), 'a number')}", INVALID)
    return call, parsed


@app.command("mcp")
def mcp(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="the endpoint, e.g. http://127.0.0.1:8000/mcp")],
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="MCPCTL_TEST_TOKEN",
            help="bearer token, sent only as `Authorization: Bearer` and never printed",
        ),
    ] = None,
    call: Annotated[
        str | None, typer.Option("--call", metavar="TOOL", help="also call this tool")
    ] = None,
    args: Annotated[
        str | None, typer.Option("--args", metavar="JSON", help="the call's arguments object")
    ] = None,
    output: Annotated[str, typer.Option("-o", "--output", help="text or json")] = "text",
    timeout: Annotated[float, typer.Option("--timeout", help="seconds allowed per step")] = 10.0,
) -> None:
    """Validate a Streamable HTTP MCP endpoint: HTTP, auth, initialize, tools/list, a call."""
    if output not in ("text", "json"):
        fail(f"unknown output format `{output}`: use text or json", INVALID)
    if not (math.isfinite(timeout) and 0 < timeout <= 3600):
        fail("--timeout must be more than 0 and at most 3600 seconds", INVALID)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fail(f"`{url}` is not an http(s) URL", INVALID)
    planned = _parse_call(call, args)

    def mask(text: str) -> str:
        if token:  # also as it appears inside JSON strings
            for form in {token, json.dumps(token, ensure_ascii=False)[1:-1]}:
                text = text.replace(form, "***")
        return text

    import anyio

    with _quiet_sdk():
        report = anyio.run(run_checks, url, token, planned, timeout)
    if output == "json":
        typer.echo(mask(render_json(report, token_given=bool(token))))
    else:
        fancy = sys.stdout.isatty() and getattr(ctx.obj, "color", True)
        typer.echo(mask(render_text(report, fancy=fancy)))
    failed = report.first_failure()
    if failed is not None:
        fail(mask(f"{failed.name}: {failed.detail}"), report.code)
