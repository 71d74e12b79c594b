"""``mcpctl test mcp URL``: check any Streamable HTTP MCP endpoint, step by step.

The steps run in order, each timed and each given ``--timeout`` seconds:

- ``http``: a raw POST of ``initialize`` with no credentials: is anything MCP-shaped there?
- ``auth``: the server's challenge (status, ``WWW-Authenticate``, ``resource_metadata``)
  and, with ``--token``, whether the token passes it;
- ``initialize``: through the MCP SDK: protocol version, server name and version, capabilities;
- ``tools/list``: every tool's name and input schema checked against the spec, on the raw
  result (the SDK's typed result rejects a bad schema as a whole, without naming the tool);
- ``tools/call``: only with ``--call TOOL [--args JSON]``; raw as well, because the SDK's
  ``call_tool`` first re-lists the tools (through that strict parser) and so also times that.

A failure in one of the first three steps stops the run. The token travels only as
``Authorization: Bearer`` and is masked in everything printed.

The MCP SDK and httpx2 are imported inside the functions that use them: importing the SDK
takes about half a second, which every other ``mcpctl`` command would otherwise pay.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import ssl
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer

from cli.errors import DENIED, ERROR, INVALID, OK, fail

if TYPE_CHECKING:
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.shared.dispatcher import CallOptions
    from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
    from mcp.types import ContentBlock, InitializeResult

app = typer.Typer(help="Check endpoints from the outside.", no_args_is_help=True)

SPEC_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
STRICT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MCP_CONTENT_TYPES = ("application/json", "text/event-stream")
HANDSHAKE_VERSION = "2025-11-25"  # what the probe offers; the SDK's session negotiates its own
UNSUPPORTED_PROTOCOL_VERSION = -32022
MAX_PAGES = 100
MAX_BODY = 64 * 1024
PREVIEW = 200


@dataclass
class Step:
    name: str
    ok: bool
    ms: float
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "ms": round(self.ms, 1),
            "detail": self.detail,
            **self.extra,
        }


@dataclass
class Report:
    url: str
    steps: list[Step] = field(default_factory=list)
    code: int = OK

    @property
    def ok(self) -> bool:
        return self.code == OK

    def first_failure(self) -> Step | None:
        return next((s for s in self.steps if not s.ok), None)


@dataclass
class _Probe:
    status: int
    reason: str
    content_type: str
    headers: httpx2.Headers
    body: bytes


@dataclass
class _Listing:
    names: list[str] = field(default_factory=list)
    with_output_schema: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _Stop(Exception):
    """The run cannot go on; the failed step is already in the report."""


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _our_version() -> str:
    try:
        return dist_version("mcpctl")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"


def _clip(text: str, limit: int = PREVIEW) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _printable(name: str) -> str:
    return _clip(json.dumps(name, ensure_ascii=False)[1:-1], 64)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def connect_reason(exc: BaseException) -> str:
    """The innermost OS reason of a connection failure, e.g. ``connection refused``."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLError):  # an OSError too, but its errno means nothing
            detail = getattr(cur, "verify_message", None) or getattr(cur, "reason", None)
            return f"TLS error: {detail or cur}"
        if isinstance(cur, OSError) and cur.errno is not None:
            if cur.errno > 0:
                return os.strerror(cur.errno).lower()
            return str(cur.strerror or cur).lower()
        cur = cur.__cause__ or cur.__context__
    return str(exc).lower() or "connection failed"


def _resource_metadata(challenge: str | None) -> str | None:
    match = re.search(r'resource_metadata="([^"]*)"', challenge or "")
    return match.group(1) if match else None


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _answered(sse: bytes) -> bool:
    """Whether an SSE body holds a complete event carrying a JSON-RPC response."""
    events = sse.replace(b"\r\n", b"\n").split(b"\n\n")[:-1]
    return any(
        line.startswith(b"data:") and b'"id"' in line
        for event in events
        for line in event.split(b"\n")
    )


def _error_text(body: bytes) -> str:
    """The message of a JSON-RPC or OAuth error body, else the body's start."""
    text = body.decode("utf-8", "replace")
    with suppress(ValueError):
        data = json.loads(text)
        if isinstance(data, dict):
            err = data.get("error")
            if isinstance(err, dict) and isinstance(err.get("message"), str):
                return _clip(err["message"])
            desc = data.get("error_description") or data.get("detail")
            if isinstance(desc, str):
                return _clip(desc)
    return _clip(text) or "empty body"


def _preview(content: list[ContentBlock]) -> str:
    from mcp.types import TextContent

    parts = [c.text if isinstance(c, TextContent) else f"[{c.type}]" for c in content]
    return _clip(" ".join(parts)) if parts else "(no content)"


def check_tools(tools: list[Any]) -> _Listing:
    """Names, problems and warnings of the ``tools`` of a raw ``tools/list`` result."""
    out = _Listing()
    for i, tool in enumerate(tools, 1):
        if not isinstance(tool, dict):
            out.problems.append(f"tool #{i}: not a JSON object")
            continue
        name = tool.get("name")
        label = f"`{_printable(name)}`" if isinstance(name, str) else f"tool #{i}"
        if not isinstance(name, str) or not SPEC_NAME.fullmatch(name):
            out.problems.append(f"{label}: a name must be 1-128 characters of A-Z a-z 0-9 _ . -")
        elif not STRICT_NAME.fullmatch(name):
            out.warnings.append(
                f"{label}: some clients accept only 1-64 characters of A-Z a-z 0-9 _ -"
            )
        if isinstance(name, str):
            if name in out.names:
                out.problems.append(f"{label}: duplicate name")
            out.names.append(name)
            if tool.get("outputSchema") is not None:
                out.with_output_schema.add(name)
        schema = tool.get("inputSchema")
        if not isinstance(schema, dict):
            out.problems.append(f"{label}: inputSchema is missing or not a JSON object")
        elif schema.get("type") != "object":
            got = json.dumps(schema.get("type"))
            out.problems.append(f"{label}: inputSchema must have type `object`, not {got}")
        elif not isinstance(schema.get("properties", {}), dict):
            out.problems.append(f"{label}: inputSchema.properties must be an object")
        elif not isinstance(schema.get("required", []), list):
            out.problems.append(f"{label}: inputSchema.required must be a list")
    return out


class _Checker:
    def __init__(
        self, url: str, token: str | None, call: tuple[str, dict[str, Any]] | None, timeout: float
    ) -> None:
        self.url = url
        self.token = token
        self.call = call
        self.timeout = timeout
        self.where = urlsplit(url).netloc.rpartition("@")[2]
        self.report = Report(url=url)
        self._refusal: httpx2.Response | None = None

    def _add(self, step: Step, code: int = ERROR) -> None:
        self.report.steps.append(step)
        if not step.ok:
            self.report.code = max(self.report.code, code)  # DENIED (2) outranks ERROR (1)

    def _stop(self, step: Step, code: int = ERROR) -> _Stop:
        self._add(step, code)
        return _Stop(step.name)

    async def run(self) -> Report:
        import httpx2

        with suppress(_Stop):
            async with httpx2.AsyncClient(timeout=self.timeout) as raw:
                probe = await self._http(raw)
                await self._auth(raw, probe)
            await self._session()
        return self.report

    # -- raw HTTP: reachability and the auth challenge ---------------------------------------

    async def _post_initialize(self, client: httpx2.AsyncClient, *, token: str | None) -> _Probe:
        """POST ``initialize`` by hand, read at most 64 KiB, and close any session it opened."""
        import anyio
        import httpx2

        message = {
            "jsonrpc": "2.0",
            "id": "mcpctl-probe",
            "method": "initialize",
            "params": {
                "protocolVersion": HANDSHAKE_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "mcpctl", "version": _our_version()},
            },
        }
        headers = {"accept": ", ".join(MCP_CONTENT_TYPES), "content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        with anyio.fail_after(self.timeout):
            async with client.stream("POST", self.url, json=message, headers=headers) as resp:
                sse = resp.headers.get("content-type", "").startswith("text/event-stream")
                body = b""
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    # an SSE stream may stay open after the answer: stop at the answer
                    if len(body) >= MAX_BODY or (sse and _answered(body)):
                        break
        session = resp.headers.get("mcp-session-id")
        if session and resp.is_success:
            headers["mcp-session-id"] = session
            with anyio.move_on_after(self.timeout), suppress(httpx2.HTTPError):
                await client.delete(self.url, headers=headers)
        content_type = resp.headers.get("content-type", "").partition(";")[0].strip().lower()
        return _Probe(resp.status_code, resp.reason_phrase, content_type, resp.headers, body)

    async def _probe(self, client: httpx2.AsyncClient, step: str, token: str | None) -> _Probe:
        import httpx2

        start = time.perf_counter()
        try:
            return await self._post_initialize(client, token=token)
        except (TimeoutError, httpx2.TimeoutException):
            why = f"no response from {self.where} within {self.timeout:g}s"
        except httpx2.ConnectError as exc:
            why = f"cannot connect to {self.where}: {connect_reason(exc)}"
        except httpx2.HTTPError as exc:
            why = f"HTTP request to {self.where} failed: {_clip(str(exc)) or 'no details'}"
        raise self._stop(Step(step, False, _ms(start), why))

    async def _http(self, client: httpx2.AsyncClient) -> _Probe:
        start = time.perf_counter()
        probe = await self._probe(client, "http", None)
        ms = _ms(start)
        status = f"HTTP {probe.status} {probe.reason}".rstrip()
        extra: dict[str, Any] = {"status": probe.status, "content_type": probe.content_type}
        if probe.status in (401, 403):
            self._add(Step("http", True, ms, status, extra))
            return probe
        if 200 <= probe.status < 300 and probe.content_type in MCP_CONTENT_TYPES:
            self._add(Step("http", True, ms, f"{status}, {probe.content_type}", extra))
            return probe
        if 200 <= probe.status < 300:
            kind = probe.content_type or "no content type"
            why = f"{status} with {kind}: not an MCP endpoint"
        elif probe.status == 404:
            why = f"{status}: no MCP endpoint at this URL (the path is often /mcp)"
        elif probe.status == 405:
            why = f"{status}: the endpoint does not take POST, so it is not Streamable HTTP"
        elif 300 <= probe.status < 400:
            where = probe.headers.get("location", "nowhere")
            why = f"{status}: redirects to {where}; use that URL if it is the intended server"
        else:
            why = f"{status}: {_error_text(probe.body)}"
        raise self._stop(Step("http", False, ms, why, extra))

    async def _auth(self, client: httpx2.AsyncClient, probe: _Probe) -> None:
        if probe.status not in (401, 403):
            detail = "not required" + (" (the token is sent anyway)" if self.token else "")
            self._add(Step("auth", True, 0.0, detail, {"required": False}))
            return
        challenge = probe.headers.get("www-authenticate")
        extra: dict[str, Any] = {
            "required": True,
            "status": probe.status,
            "www_authenticate": challenge,
            "resource_metadata": _resource_metadata(challenge),
        }
        said = f"HTTP {probe.status}" + (
            f", WWW-Authenticate: {challenge}" if challenge else ", no WWW-Authenticate header"
        )
        if not self.token:
            why = f"{said}; the server needs a token: pass --token"
            raise self._stop(Step("auth", False, 0.0, why, extra), DENIED)
        start = time.perf_counter()
        again = await self._probe(client, "auth", self.token)
        ms = _ms(start)
        extra["token_status"] = again.status
        if again.status in (401, 403):
            then = again.headers.get("www-authenticate")
            why = f"token rejected: HTTP {again.status}"
            why += f", WWW-Authenticate: {then}" if then else ""
            raise self._stop(Step("auth", False, ms, why, extra), DENIED)
        if not 200 <= again.status < 300:
            why = f"with the token: HTTP {again.status}: {_error_text(again.body)}"
            raise self._stop(Step("auth", False, ms, why, extra))
        self._add(Step("auth", True, ms, f"token accepted (without it: {said})", extra))

    # -- through the SDK: initialize, tools/list, tools/call ---------------------------------

    async def _remember_refusal(self, response: httpx2.Response) -> None:
        """An httpx2 response hook: the SDK turns a 401 into a bare JSON-RPC -32603."""
        if response.status_code in (401, 403):
            self._refusal = response

    async def _session(self) -> None:
        import httpx2
        from mcp.client.session import ClientSession
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
        from mcp.types import Implementation

        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        hooks = {"response": [self._remember_refusal]}
        me = Implementation(name="mcpctl", version=_our_version())
        start = time.perf_counter()
        try:
            async with (
                httpx2.AsyncClient(
                    headers=headers, timeout=self.timeout, event_hooks=hooks
                ) as http,
                streamable_http_client(self.url, http_client=http) as (read, write),
            ):
                # Our own dispatcher, so that tools/list and tools/call can be sent raw.
                dispatcher: JSONRPCDispatcher[Any] = JSONRPCDispatcher(read, write)
                async with ClientSession(dispatcher=dispatcher, client_info=me) as session:
                    init = await self._initialize(session)
                    if init is None:
                        return
                    listing = await self._list_tools(dispatcher, init)
                    if self.call is not None:
                        await self._call_tool(dispatcher, init, listing)
        except Exception as exc:  # the transport's own failures arrive as exception groups
            planned = ["initialize", "tools/list"] + (["tools/call"] if self.call else [])
            done = {s.name for s in self.report.steps}
            name = next((n for n in planned if n not in done), "close")
            why, code = self._describe(exc)
            self._add(Step(name, False, _ms(start), why), code)

    def _describe(self, exc: BaseException) -> tuple[str, int]:
        import httpx2
        from mcp.shared.exceptions import MCPError
        from pydantic import ValidationError

        exc = _leaf(exc)
        if self._refusal is not None:
            challenge = self._refusal.headers.get("www-authenticate")
            why = f"HTTP {self._refusal.status_code}"
            why += f", WWW-Authenticate: {challenge}" if challenge else ""
            return why, DENIED
        if isinstance(exc, TimeoutError | httpx2.TimeoutException):
            return f"no answer within {self.timeout:g}s", ERROR
        if isinstance(exc, httpx2.ConnectError):
            return f"cannot connect to {self.where}: {connect_reason(exc)}", ERROR
        if isinstance(exc, MCPError):
            if exc.code == UNSUPPORTED_PROTOCOL_VERSION:
                supported = exc.data.get("supported") if isinstance(exc.data, dict) else None
                return f"the server has no initialize handshake; it speaks {supported}", ERROR
            return f"{_clip(exc.message)} (JSON-RPC error {exc.code})", ERROR
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            return f"invalid result from the server: {where}: {first['msg']}", ERROR
        return _clip(str(exc)) or exc.__class__.__name__, ERROR

    def _fail(
        self, name: str, start: float, exc: Exception, extra: dict[str, Any] | None = None
    ) -> None:
        why, code = self._describe(exc)
        self._add(Step(name, False, _ms(start), why, extra or {}), code)

    async def _initialize(self, session: ClientSession) -> InitializeResult | None:
        import anyio

        start = time.perf_counter()
        try:
            with anyio.fail_after(self.timeout):
                init = await session.initialize()
        except Exception as exc:
            self._fail("initialize", start, exc)
            return None
        caps = init.capabilities
        offered = [
            name
            for name in ("tools", "resources", "prompts", "logging", "completions")
            if getattr(caps, name) is not None
        ]
        server = init.server_info
        extra = {
            "protocol_version": init.protocol_version,
            "server": {"name": server.name, "version": server.version},
            "capabilities": offered,
        }
        detail = (
            f"protocol {init.protocol_version}, server {_clip(server.name, 60)} "
            f"{_clip(server.version, 30)}, capabilities: {', '.join(offered) or 'none'}"
        )
        self._add(Step("initialize", True, _ms(start), detail, extra))
        return init

    async def _list_tools(
        self, dispatcher: JSONRPCDispatcher[Any], init: InitializeResult
    ) -> _Listing:
        import anyio

        if init.capabilities.tools is None:
            self._add(Step("tools/list", True, 0.0, "skipped: the server offers no tools"))
            return _Listing()
        start = time.perf_counter()
        opts: CallOptions = {"headers": {"mcp-protocol-version": init.protocol_version}}
        tools: list[Any] = []
        notes: list[str] = []
        cursor: Any = None
        try:
            for _ in range(MAX_PAGES):
                params = {"cursor": cursor} if cursor is not None else None
                with anyio.fail_after(self.timeout):
                    page = await dispatcher.send_raw_request("tools/list", params, opts)
                if not isinstance(page.get("tools"), list):
                    raise ValueError("the result has no `tools` list")
                tools.extend(page["tools"])
                cursor = page.get("nextCursor")
                if cursor is None:
                    break
            else:
                notes.append(f"warning: stopped after {MAX_PAGES} pages")
        except Exception as exc:
            self._fail("tools/list", start, exc)
            return _Listing()
        ms = _ms(start)
        listing = check_tools(tools)
        names = listing.names
        detail = _plural(len(tools), "tool")
        if names:
            detail += ": " + ", ".join(_printable(n) for n in names[:10])
            detail += ", ..." if len(names) > 10 else ""
        if listing.problems:
            detail += "; " + _plural(len(listing.problems), "problem")
        extra = {
            "count": len(tools),
            "tools": names,
            "problems": listing.problems,
            "warnings": listing.warnings,
        }
        notes += [f"problem: {p}" for p in listing.problems]
        notes += [f"warning: {w}" for w in listing.warnings]
        self._add(Step("tools/list", not listing.problems, ms, detail, extra, notes))
        return listing

    async def _call_tool(
        self, dispatcher: JSONRPCDispatcher[Any], init: InitializeResult, listing: _Listing
    ) -> None:
        import anyio
        from mcp.types import CallToolResult

        assert self.call is not None
        name, arguments = self.call
        shown = f"`{_printable(name)}`"
        opts: CallOptions = {"headers": {"mcp-protocol-version": init.protocol_version}}
        start = time.perf_counter()
        try:
            with anyio.fail_after(self.timeout):
                raw = await dispatcher.send_raw_request(
                    "tools/call", {"name": name, "arguments": arguments}, opts
                )
            ms = _ms(start)
            result = CallToolResult.model_validate(raw, by_name=False)
        except Exception as exc:
            self._fail("tools/call", start, exc, {"tool": name})
            return
        preview = _preview(result.content)
        extra = {"tool": name, "is_error": result.is_error, "preview": preview}
        ok = not result.is_error
        if result.is_error:
            detail = f"{shown} returned an error (isError): {preview}"
        elif name in listing.with_output_schema and result.structured_content is None:
            ok = False
            detail = f"{shown} declares an outputSchema but returned no structuredContent"
        else:
            detail = f"{shown}: {preview}"
        notes = [] if name in listing.names else [f"warning: {shown} is not in tools/list"]
        self._add(Step("tools/call", ok, ms, detail, extra, notes))


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


def render_text(report: Report, *, fancy: bool) -> str:
    width = max((len(s.name) for s in report.steps), default=0)
    lines = [f"mcp endpoint {report.url}"]
    for step in report.steps:
        if fancy:
            mark = typer.style("✓", fg="green") if step.ok else typer.style("✗", fg="red")
        else:
            mark = "ok  " if step.ok else "FAIL"
        lines.append(f"{mark} {step.name.ljust(width)}  {step.detail}  ({step.ms:.1f} ms)")
        lines += [f"    {note}" for note in step.notes]
    lines.append("all checks passed" if report.ok else f"failed (exit {report.code})")
    return "\n".join(lines)


def render_json(report: Report, *, token_given: bool) -> str:
    body = {
        "url": report.url,
        "ok": report.ok,
        "exit_code": report.code,
        "token": "***" if token_given else None,
        "steps": [s.as_dict() for s in report.steps],
    }
    return json.dumps(body, indent=2, ensure_ascii=False)


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
        report = anyio.run(_Checker(url, token, planned, timeout).run)
    if output == "json":
        typer.echo(mask(render_json(report, token_given=bool(token))))
    else:
        fancy = sys.stdout.isatty() and getattr(ctx.obj, "color", True)
        typer.echo(mask(render_text(report, fancy=fancy)))
    failed = report.first_failure()
    if failed is not None:
        fail(mask(f"{failed.name}: {failed.detail}"), report.code)
