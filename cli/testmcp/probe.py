"""The raw HTTP steps: is anything MCP-shaped at the URL, and what does its auth say?

``http`` POSTs ``initialize`` by hand with no credentials; ``auth`` reads the challenge
(status, ``WWW-Authenticate``, ``resource_metadata``) and, with ``--token``, asks again
with the token. Each reads at most 64 KiB and closes any session the server opened.
httpx2 is imported inside the functions (see :mod:`cli.testmcp`).
"""

from __future__ import annotations

import json
import os
import re
import ssl
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from cli.errors import DENIED
from cli.testmcp.report import Run, Step, clip, elapsed_ms, our_version

if TYPE_CHECKING:
    import httpx2

__all__ = [
    "HANDSHAKE_VERSION",
    "MCP_CONTENT_TYPES",
    "Probe",
    "check_auth",
    "check_http",
    "connect_reason",
]

MCP_CONTENT_TYPES: Final = ("application/json", "text/event-stream")
#: What the probe offers; the SDK's session negotiates its own.
HANDSHAKE_VERSION: Final = "2025-11-25"
MAX_BODY: Final = 64 * 1024


@dataclass
class Probe:
    """What one hand-made ``initialize`` POST got back."""

    status: int
    reason: str
    content_type: str
    headers: httpx2.Headers
    body: bytes


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
                return clip(err["message"])
            desc = data.get("error_description") or data.get("detail")
            if isinstance(desc, str):
                return clip(desc)
    return clip(text) or "empty body"


async def _post_initialize(run: Run, client: httpx2.AsyncClient, *, token: str | None) -> Probe:
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
            "clientInfo": {"name": "mcpctl", "version": our_version()},
        },
    }
    headers = {"accept": ", ".join(MCP_CONTENT_TYPES), "content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    with anyio.fail_after(run.timeout):
        async with client.stream("POST", run.url, json=message, headers=headers) as resp:
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
        with anyio.move_on_after(run.timeout), suppress(httpx2.HTTPError):
            await client.delete(run.url, headers=headers)
    content_type = resp.headers.get("content-type", "").partition(";")[0].strip().lower()
    return Probe(resp.status_code, resp.reason_phrase, content_type, resp.headers, body)


async def _probe(run: Run, client: httpx2.AsyncClient, step: str, token: str | None) -> Probe:
    import httpx2

    start = time.perf_counter()
    try:
        return await _post_initialize(run, client, token=token)
    except (TimeoutError, httpx2.TimeoutException):
        why = f"no response from {run.where} within {run.timeout:g}s"
    except httpx2.ConnectError as exc:
        why = f"cannot connect to {run.where}: {connect_reason(exc)}"
    except httpx2.HTTPError as exc:
        why = f"HTTP request to {run.where} failed: {clip(str(exc)) or 'no details'}"
    raise run.stop(Step(step, False, elapsed_ms(start), why))


async def check_http(run: Run, client: httpx2.AsyncClient) -> Probe:
    """The ``http`` step: an answer of MCP's content types, or a challenge, passes."""
    start = time.perf_counter()
    probe = await _probe(run, client, "http", None)
    ms = elapsed_ms(start)
    status = f"HTTP {probe.status} {probe.reason}".rstrip()
    extra: dict[str, Any] = {"status": probe.status, "content_type": probe.content_type}
    if probe.status in (401, 403):
        run.add(Step("http", True, ms, status, extra))
        return probe
    if 200 <= probe.status < 300 and probe.content_type in MCP_CONTENT_TYPES:
        run.add(Step("http", True, ms, f"{status}, {probe.content_type}", extra))
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
    raise run.stop(Step("http", False, ms, why, extra))


async def check_auth(run: Run, client: httpx2.AsyncClient, probe: Probe) -> None:
    """The ``auth`` step: what the server's challenge says, and whether the token passes it."""
    if probe.status not in (401, 403):
        detail = "not required" + (" (the token is sent anyway)" if run.token else "")
        run.add(Step("auth", True, 0.0, detail, {"required": False}))
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
    if not run.token:
        why = f"{said}; the server needs a token: pass --token"
        raise run.stop(Step("auth", False, 0.0, why, extra), DENIED)
    start = time.perf_counter()
    again = await _probe(run, client, "auth", run.token)
    ms = elapsed_ms(start)
    extra["token_status"] = again.status
    if again.status in (401, 403):
        then = again.headers.get("www-authenticate")
        why = f"token rejected: HTTP {again.status}"
        why += f", WWW-Authenticate: {then}" if then else ""
        raise run.stop(Step("auth", False, ms, why, extra), DENIED)
    if not 200 <= again.status < 300:
        why = f"with the token: HTTP {again.status}: {_error_text(again.body)}"
        raise run.stop(Step("auth", False, ms, why, extra))
    run.add(Step("auth", True, ms, f"token accepted (without it: {said})", extra))
