"""Proxy benchmark: ``tools/call`` of a trivial tool, directly and through the proxies.

    .venv/bin/python bench/proxy.py [--quick] [--calls N] [--sequential Q] [--concurrency C]
                                    [--sessions S]

Starts, as subprocesses on loopback: upstream Streamable HTTP MCP servers
(``tests/servers/mcp_http.py``: ``demo``, and ``many`` with 50 tools), ``mcpd serve`` on a
SQLite file in a temporary directory with the upstreams registered as ``http`` servers and
the stdio demo server (``tests/servers/stdio_server.py``) as the ``stdio`` server
``bench-stdio``, ``mcplocal serve`` following that mcpd, and nginx (Debian's package) as a
plain reverse proxy to the ``demo`` upstream, from a config generated in the temporary
directory (without nginx that path is skipped, and ``floor`` says so). Then, in one run,
it calls the ``echo`` tool on each path:

* ``direct``:   on the upstream itself;
* ``nginx``:    through nginx (the floor: bytes relayed, no MCP, no auth);
* ``pyfloor``:  through a byte relay in Python (``bench/pyfloor.py``: uvicorn, the
  coalescing HTTP protocol and the relay's upstream client that mcpd and mcplocal use; no
  MCP, no auth, no audit): the floor of a hop in the stack the proxies are built on;
* ``mcpd``:     through ``/api/v1/servers/bench/mcp`` (the admin's session bearer);
* ``mcplocal``: through mcplocal's ``/mcp`` with an McpToken (client -> mcplocal -> mcpd
  -> upstream), as ``bench__echo``;
* ``stdio_direct``: on the stdio server, a child of the bench (the SDK's ``stdio_client``);
* ``stdio_mcpd``: on the same server as a child of mcpd, through
  ``/api/v1/servers/bench-stdio/mcp``.

Each path is measured twice, with the MCP SDK's own ``ClientSession`` and (``<path>_raw``)
with plain JSON-RPC (lines on the pipes for stdio; over HTTP, asyncio streams and httptools:
kept-alive HTTP/1.1, SSE parsed, nothing validated), so the client's own cost does not hide
the proxy's. After a warm-up, ``Q`` (500) calls from one client (``seq_p50_ms``,
``seq_p99_ms``), then ``N`` (2,000) calls spread over ``C`` (16) clients (``p50_ms``,
``p99_ms``; ``rps_16`` is calls per second over that phase; over stdio the clients share
the one child's session). ``cpu_by_process_ms_per_call`` is the CPU (user + system, from
/proc) each process used per call over both phases: the ``upstream``, each proxy (nginx:
master and worker; mcpd without its stdio children) and the bench's own ``client``;
``cpu_ms_per_call`` is the sum over the processes serving the path (direct: the upstream;
otherwise the proxies). ``added_seq_p50_ms`` is what each proxied path adds to the
sequential p50 of the same client on its direct path (``stdio_mcpd_raw_over_stdio_direct``:
the raw client through mcpd over the SDK client on the child's pipes).

``list_cached_p50_ms`` is the p50 of ``tools/list`` through mcplocal for a project of 20
upstream servers x 50 tools (1,000 tools), answered from the caches, as plain JSON-RPC over
HTTP (``list_sdk_client_p50_ms``: the same timed in the MCP SDK's client, which validates
the ~300 kB answer); ``list_mcpd_p50_ms`` the same for one server through mcpd (SDK
client). ``mcplocal_rss_mb`` is mcplocal's resident memory with ``S`` (1,000) MCP sessions
open.

Progress goes to stderr; the last line of stdout is one JSON object::

    {"results": [{"path", "seq_p50_ms", "seq_p99_ms", "p50_ms", "p99_ms", "rps_16",
                  "cpu_ms_per_call", "cpu_by_process_ms_per_call": {name: ms}}, ...],
     "added_seq_p50_ms": {path: ms}, "floor": "nginx" | "skipped: ...",
     "list_cached_p50_ms": z, "list_mcpd_p50_ms": w, "list_sdk_client_p50_ms": v,
     "mcplocal_rss_mb": m, "sessions": S}

``--quick`` makes a handful of calls (for the smoke test); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(ROOT))  # (upstream.relay's client, for the raw JSON-RPC client)

import anyio  # noqa: E402
import httpx  # noqa: E402
import httpx2  # noqa: E402
from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp_types.version import LATEST_HANDSHAKE_VERSION  # noqa: E402

from upstream.relay.http import SESSION_HEADER, VERSION_HEADER, UpstreamHttp  # noqa: E402
from upstream.relay.sse import parse  # noqa: E402

ADMIN = "bench-admin"
PASSWORD = "bench admin password"
MCPD = Path(sys.executable).with_name("mcpd")
MCPLOCAL = Path(sys.executable).with_name("mcplocal")
PHASE_CAP_S = 120.0  # every phase stops here, whatever N is
VERSION = LATEST_HANDSHAKE_VERSION  # the raw client's, as the SDK client's handshake


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def process(
    argv: list[str], env: dict[str, str], ready_url: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` until ``ready_url`` answers (any status); always stop it and its group."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"{argv[0]} exited early: see {log}")
                try:
                    if httpx.get(ready_url, timeout=1).status_code < 500:
                        break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{argv[0]} not ready in 30 s: see {log}") from None
                    time.sleep(0.1)
            yield proc
        finally:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(*pids: int) -> float:
    """User + system CPU the processes have used so far (``/proc/<pid>/stat``)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


class SdkHttp:
    """The MCP SDK's own client over Streamable HTTP (one ``ClientSession`` each)."""

    def __init__(self, url: str, bearer: str | None) -> None:
        self.url, self.headers = url, {"Authorization": f"Bearer {bearer}"} if bearer else {}

    async def open(self, stack: AsyncExitStack) -> Callable[[str, dict[str, Any]], Any]:
        http = await stack.enter_async_context(httpx2.AsyncClient(headers=self.headers, timeout=30))
        read, write = await stack.enter_async_context(
            streamable_http_client(self.url, http_client=http)
        )
        return await _sdk_session(stack, read, write)


class SdkStdio:
    """The MCP SDK's own client on a stdio server it starts (one child, shared)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv, self.env = argv, env
        self.call: Callable[[str, dict[str, Any]], Any] | None = None
        self.pids: list[int] = []

    async def open(self, stack: AsyncExitStack) -> Callable[[str, dict[str, Any]], Any]:
        if self.call is None:  # one pipe: concurrent clients share its session
            params = StdioServerParameters(command=self.argv[0], args=self.argv[1:], env=self.env)
            before = set(children(os.getpid()))
            read, write = await stack.enter_async_context(stdio_client(params))
            self.call = await _sdk_session(stack, read, write)
            self.pids = [p for p in children(os.getpid()) if p not in before]
        return self.call


async def _sdk_session(
    stack: AsyncExitStack, read: Any, write: Any
) -> Callable[[str, dict[str, Any]], Any]:
    session = await stack.enter_async_context(ClientSession(read, write))
    await session.initialize()
    await session.list_tools()

    async def call(tool: str, args: dict[str, Any]) -> None:
        result = await session.call_tool(tool, args)
        if result.is_error:
            raise SystemExit(f"call failed: {result.content}")

    return call


class RawHttp:
    """Plain JSON-RPC over kept-alive HTTP/1.1 (asyncio streams and httptools, as mcpd's
    relay speaks to upstreams): what a lean client costs, so the proxies' share shows."""

    def __init__(self, url: str, bearer: str | None) -> None:
        self.url, self.bearer = url, bearer

    async def open(self, stack: AsyncExitStack) -> Callable[[str, dict[str, Any]], Any]:
        headers = {"authorization": f"Bearer {self.bearer}"} if self.bearer else {}
        http = UpstreamHttp(self.url, headers, None)
        stack.callback(http.close)
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": VERSION, "capabilities": {},
            "clientInfo": {"name": "bench-raw", "version": "0"}}}  # fmt: skip
        ex = await http.post(json.dumps(init).encode())
        await _read_answer(ex, 0)
        sid = ex.headers.get(SESSION_HEADER)
        session = {VERSION_HEADER: VERSION, **({SESSION_HEADER: sid} if sid else {})}
        http = UpstreamHttp(self.url, {**headers, **session}, None)
        stack.callback(http.close)
        ex = await http.post(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        async for _ in ex.body():
            pass
        ex.release()
        ids = iter(range(1, 1 << 62))

        async def call(tool: str, args: dict[str, Any]) -> None:
            i = next(ids)
            body = {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                    "params": {"name": tool, "arguments": args}}  # fmt: skip
            answer = await _read_answer(await http.post(json.dumps(body).encode()), i)
            if "error" in answer or answer["result"].get("isError"):
                raise SystemExit(f"call failed: {answer}")

        return call


async def _read_answer(ex: Any, request_id: int) -> dict[str, Any]:
    """The response to ``request_id`` in an HTTP answer (JSON, or SSE events)."""
    try:
        if ex.status != 200:
            raise SystemExit(f"HTTP {ex.status}")
        buffer = bytearray()
        async for chunk in ex.body():
            buffer += chunk
        sse = ex.headers.get("content-type", "").startswith("text/event-stream")
        datas = [e.data for e in parse(buffer) if e.data.strip()] if sse else [bytes(buffer)]
        for data in datas:
            message = json.loads(data)
            if isinstance(message, dict) and message.get("id") == request_id:
                return message
        raise SystemExit(f"no answer to {request_id}: {bytes(buffer)[:200]!r}")
    finally:
        ex.release()


class RawStdio:
    """Plain JSON-RPC lines on a stdio server's pipes (one child, shared)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv, self.env = argv, env
        self.call: Callable[[str, dict[str, Any]], Any] | None = None
        self.pids: list[int] = []

    async def open(self, stack: AsyncExitStack) -> Callable[[str, dict[str, Any]], Any]:
        if self.call is not None:
            return self.call
        proc = await asyncio.create_subprocess_exec(
            *self.argv, env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, cwd=ROOT, limit=1 << 24,
        )  # fmt: skip
        self.pids = [proc.pid]
        assert proc.stdin is not None and proc.stdout is not None
        stdin, stdout = proc.stdin, proc.stdout

        async def stop() -> None:
            stdin.close()
            with suppress(ProcessLookupError):
                proc.terminate()
            await proc.wait()

        stack.push_async_callback(stop)
        waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}

        async def reader() -> None:
            async for line in stdout:
                message = json.loads(line)
                future = waiting.pop(message.get("id"), None) if "id" in message else None
                if future is not None:
                    future.set_result(message)

        task = asyncio.ensure_future(reader())
        stack.callback(task.cancel)
        ids = iter(range(1, 1 << 62))

        async def ask(method: str, params: dict[str, Any]) -> dict[str, Any]:
            i = next(ids)
            waiting[i] = asyncio.get_running_loop().create_future()
            line = {"jsonrpc": "2.0", "id": i, "method": method, "params": params}
            stdin.write(json.dumps(line).encode() + b"\n")
            return await waiting[i]

        await ask("initialize", {"protocolVersion": VERSION, "capabilities": {},
                                 "clientInfo": {"name": "bench-raw", "version": "0"}})  # fmt: skip
        stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')

        async def call(tool: str, args: dict[str, Any]) -> None:
            answer = await ask("tools/call", {"name": tool, "arguments": args})
            if "error" in answer or answer["result"].get("isError"):
                raise SystemExit(f"call failed: {answer}")

        self.call = call
        return call


Client = SdkHttp | SdkStdio | RawHttp | RawStdio
# a path: its name, its client, the tool, its processes by name, the ones serving it
Path_ = tuple[str, Client, str, Callable[[], dict[str, list[int]]], tuple[str, ...]]


def children(pid: int) -> list[int]:
    """``pid``'s descendants (from /proc), nearest first."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(0), []):
            out.append(child)
            todo.append(child)
    return out


async def measure(
    client: Client,
    calls: int,
    concurrency: int,
    tool: str,
    processes: Callable[[], dict[str, list[int]]],
    serving: tuple[str, ...],
    sequential: int,
) -> dict[str, Any]:
    """``sequential`` calls from one client, then ``calls`` spread over ``concurrency``
    clients; CPU per call of each named group of ``processes`` over both phases."""
    latencies: list[float] = []
    seq: list[float] = []
    async with AsyncExitStack() as stack:
        sessions = [await client.open(stack) for _ in range(concurrency)]
        for call in sessions:  # warm-up
            for _ in range(3):
                await call(tool, {"text": "warm"})
        groups = processes()
        pids = [p for group in groups.values() for p in group]
        cpu_before = {name: cpu_seconds(*group) for name, group in groups.items()}
        client_before = cpu_seconds(os.getpid())
        deadline = time.monotonic() + PHASE_CAP_S
        for _ in range(sequential):
            if time.monotonic() > deadline:
                break
            began = time.perf_counter()
            await sessions[0](tool, {"text": "hello"})
            seq.append((time.perf_counter() - began) * 1000)
        remaining = calls

        async def one(call: Callable[[str, dict[str, Any]], Any]) -> None:
            nonlocal remaining
            while remaining > 0 and time.monotonic() < deadline:
                remaining -= 1
                began = time.perf_counter()
                await call(tool, {"text": "hello"})
                latencies.append((time.perf_counter() - began) * 1000)

        began = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for call in sessions:
                tg.start_soon(one, call)
        elapsed = time.perf_counter() - began
        done = max(1, len(latencies) + len(seq))
        by_process = {
            name: round((cpu_seconds(*group) - cpu_before[name]) * 1000 / done, 3)
            for name, group in groups.items()
        }
        by_process["client"] = round((cpu_seconds(os.getpid()) - client_before) * 1000 / done, 3)
        del pids
    return {
        # CPU of the process(es) serving the path, per timed call: steadier than wall time
        # on a busy machine (direct: the upstream; a proxy path: the proxies)
        "cpu_ms_per_call": round(sum(by_process[name] for name in serving), 3),
        "p50_ms": round(statistics.median(latencies), 3),
        "p99_ms": round(percentile(latencies, 0.99), 3),
        "rps_16": round(len(latencies) / elapsed, 1),
        "seq_p50_ms": round(statistics.median(seq), 3) if seq else None,
        "seq_p99_ms": round(percentile(seq, 0.99), 3) if seq else None,
        "cpu_by_process_ms_per_call": by_process,
    }


NGINX_CONF = """daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    upstream mcp {{ server 127.0.0.1:{upstream}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://mcp;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_buffering off;
            proxy_read_timeout 60s;
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    return found


@contextmanager
def nginx(tmp: Path, upstream_port: int, port: int, env: dict[str, str]) -> Iterator[int | None]:
    """nginx as a plain reverse proxy (bytes, no MCP, no auth) to the upstream on
    ``port``: the floor a proxy hop can reach. Yields its master's pid, None without nginx."""
    binary = nginx_binary()
    if binary is None:
        yield None
        return
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, upstream=upstream_port, port=port))
    argv = [binary, "-c", str(conf), "-p", str(tmp), "-e", str(tmp / "nginx-error.log")]
    with process(argv, env, f"http://127.0.0.1:{port}/mcp", tmp / "nginx.log") as proc:
        yield proc.pid


async def open_sessions(url: str, bearer: str, count: int) -> int:
    """Open ``count`` MCP sessions (initialize + initialized) and leave them open."""
    headers = {
        "Authorization": f"Bearer {bearer}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "0"},
        },
    }
    opened = 0
    limiter = anyio.Semaphore(32)
    async with httpx.AsyncClient(timeout=30) as http:

        async def one() -> None:
            nonlocal opened
            async with limiter:
                r = await http.post(url, headers=headers, json=init)
                sid = r.headers.get("mcp-session-id")
                if r.status_code != 200 or not sid:
                    raise SystemExit(f"could not open a session: {r.status_code} {r.text[:200]}")
                done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
                await http.post(url, headers={**headers, "mcp-session-id": sid}, json=done)
                opened += 1

        async with anyio.create_task_group() as tg:
            for _ in range(count):
                tg.start_soon(one)
    return opened


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return -1.0


async def list_cached(url: str, bearer: str, n: int) -> float:
    headers = {"Authorization": f"Bearer {bearer}"}
    times: list[float] = []
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        await session.list_tools()  # fills the cache
        for _ in range(n):
            began = time.perf_counter()
            await session.list_tools()
            times.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(times), 3)


async def list_cached_raw(url: str, bearer: str, n: int) -> float:
    """``tools/list`` as plain JSON-RPC over HTTP on one session: mcplocal's serving time
    (from its caches) plus loopback HTTP, without the SDK client's own validation of the
    answer (~1,000 tools: several ms of pydantic and JSON-schema work in the client)."""
    headers = {
        "Authorization": f"Bearer {bearer}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"}}}  # fmt: skip
    times: list[float] = []
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(url, headers=headers, json=init)
        headers |= {"mcp-session-id": r.headers["mcp-session-id"],
                    "mcp-protocol-version": "2025-06-18"}  # fmt: skip
        done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        await http.post(url, headers=headers, json=done)
        for i in range(n + 1):
            began = time.perf_counter()
            r = await http.post(
                url, headers=headers, json={"jsonrpc": "2.0", "id": i + 1, "method": "tools/list"}
            )
            if r.status_code != 200 or b'"tools"' not in r.content:
                raise SystemExit(f"tools/list failed: {r.status_code} {r.text[:200]}")
            if i:  # the first fills the caches
                times.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(times), 3)


def added_p50(results: list[dict[str, Any]]) -> dict[str, float]:
    """What each proxy path adds to the sequential p50 of the same client on its base path
    (http paths over ``direct``, stdio ones over ``stdio_direct``; raw over raw)."""
    rows = {r["path"]: r for r in results}
    out = {}
    for path, row in rows.items():
        if path.startswith(("direct", "stdio_direct")):
            continue
        raw = path.endswith("_raw")
        base = "stdio_direct" if path.startswith("stdio") else "direct"
        base_row = rows.get(base + ("_raw" if raw else ""))
        if base_row is None:
            continue
        if row["seq_p50_ms"] is not None and base_row["seq_p50_ms"] is not None:
            out[path] = round(row["seq_p50_ms"] - base_row["seq_p50_ms"], 3)
    # the target of issue 18: the stdio hop through mcpd over the SDK client on the stdio pipe
    if "stdio_mcpd_raw" in rows and "stdio_direct" in rows:
        out["stdio_mcpd_raw_over_stdio_direct"] = round(
            rows["stdio_mcpd_raw"]["seq_p50_ms"] - rows["stdio_direct"]["seq_p50_ms"], 3
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few calls: a smoke test")
    parser.add_argument("--calls", type=int, default=2000, help="calls per path")
    parser.add_argument("--sequential", type=int, default=500, help="calls from one client")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients")
    parser.add_argument(
        "--paths", default="", help="only these paths (comma-separated), no lists or sessions"
    )
    parser.add_argument("--sessions", type=int, default=1000, help="sessions for the RSS")
    args = parser.parse_args()
    calls = 32 if args.quick else args.calls
    sequential = 8 if args.quick else args.sequential
    concurrency = 4 if args.quick else args.concurrency

    sessions = 20 if args.quick else args.sessions
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp_s:
        tmp = Path(tmp_s)
        up_port, many_port, mcpd_port, local_port, nginx_port, py_port = (
            free_port() for _ in range(6)
        )
        upstream = f"http://127.0.0.1:{up_port}/mcp"
        many = f"http://127.0.0.1:{many_port}/mcp"
        base = f"http://127.0.0.1:{mcpd_port}"
        local = f"http://127.0.0.1:{local_port}"
        env = {
            **os.environ,
            "MCPD_DATABASE_URL": f"sqlite:///{tmp / 'mcpd.db'}",
            "MCPD_BOOTSTRAP_ADMIN": ADMIN,
            "MCPD_BOOTSTRAP_PASSWORD": PASSWORD,
            "MCPD_SECRETS_KEY_FILE": str(tmp / "secrets.key"),
            "MCPD_LOG_DIR": str(tmp / "logs"),
        }
        env.pop("MCPD_SECRETS_KEY", None)
        up_argv = [sys.executable, "-m", "tests.servers.mcp_http", "--port"]
        mcpd_argv = [str(MCPD), "serve", "--host", "127.0.0.1", "--port", str(mcpd_port)]
        with (
            process(
                [*up_argv, str(up_port), "--kind", "demo"], env, upstream, tmp / "up.log"
            ) as up_proc,
            process([*up_argv, str(many_port), "--kind", "many"], env, many, tmp / "many.log"),
            process(mcpd_argv, env, f"{base}/healthz", tmp / "mcpd.log") as mcpd_proc,
        ):
            login = httpx.post(
                f"{base}/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD}
            )
            login.raise_for_status()
            admin = login.json()["token"]
            api = httpx.Client(
                base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {admin}"}
            )
            wide = [f"wide-{i:02d}" for i in range(20)]
            for name, url in [("bench", upstream)] + [(w, many) for w in wide]:
                api.post(
                    "/servers", json={"name": name, "transport": "http", "http": {"url": url}}
                ).raise_for_status()
            tokens = {}
            for project, servers in (("bench", ["bench"]), ("wide", wide)):
                api.post("/projects", json={"name": project, "servers": servers}).raise_for_status()
                tokens[project] = api.post(
                    "/mcptokens",
                    json={"name": project, "project": project,
                          "bindings": ["role:run,resource:servers"]},
                ).json()["token"]  # fmt: skip
            stdio_argv = [sys.executable, "-m", "tests.servers.stdio_server", "--kind", "demo"]
            stdio_env = {"PYTHONPATH": str(ROOT)}
            api.post(
                "/servers",
                json={"name": "bench-stdio", "transport": "stdio", "stdio": {
                    "command": stdio_argv[0], "args": stdio_argv[1:], "env": stdio_env}},
            ).raise_for_status()  # fmt: skip
            local_env = {
                **env,
                "MCPLOCAL_MCPD_URL": base,
                "MCPLOCAL_MCPD_TOKEN": admin,
                "MCPLOCAL_CACHE_DIR": str(tmp / "cache"),
                "MCPLOCAL_AUDIT_SPOOL_DIR": str(tmp / "audit"),
            }
            local_argv = [str(MCPLOCAL), "serve", "--host", "127.0.0.1", "--port", str(local_port)]
            via_mcpd = f"{base}/api/v1/servers/bench/mcp"
            via_stdio = f"{base}/api/v1/servers/bench-stdio/mcp"
            results: list[dict[str, Any]] = []
            py_argv = [sys.executable, str(_HERE / "pyfloor.py"), "--port", str(py_port),
                       "--upstream", upstream]  # fmt: skip
            pyfloor = f"http://127.0.0.1:{py_port}/mcp"
            with (
                process(local_argv, local_env, f"{local}/readyz", tmp / "mcplocal.log") as proc,
                nginx(tmp, up_port, nginx_port, env) as nginx_pid,
                process(py_argv, env, pyfloor, tmp / "pyfloor.log") as py_proc,
            ):
                child_env = {**env, "PYTHONPATH": str(ROOT)}
                sdk_stdio, raw_stdio = (
                    SdkStdio(stdio_argv, child_env),
                    RawStdio(stdio_argv, child_env),
                )
                up = {"upstream": [up_proc.pid]}
                via_mcpd_ = {"mcpd": [mcpd_proc.pid], **up}
                floor = f"http://127.0.0.1:{nginx_port}/mcp"
                paths: list[Path_] = [
                    ("direct", SdkHttp(upstream, None), "echo", lambda: up, ("upstream",)),
                    ("direct_raw", RawHttp(upstream, None), "echo", lambda: up, ("upstream",)),
                ]  # fmt: skip
                if nginx_pid is not None:
                    nginx_pids = lambda: {"nginx": [nginx_pid, *children(nginx_pid)], **up}  # noqa: E731
                    paths += [
                        ("nginx", SdkHttp(floor, None), "echo", nginx_pids, ("nginx",)),
                        ("nginx_raw", RawHttp(floor, None), "echo", nginx_pids, ("nginx",)),
                    ]
                py_pids = {"pyfloor": [py_proc.pid], **up}
                paths += [
                    ("pyfloor", SdkHttp(pyfloor, None), "echo", lambda: py_pids, ("pyfloor",)),
                    ("pyfloor_raw", RawHttp(pyfloor, None), "echo", lambda: py_pids,
                     ("pyfloor",)),
                    ("mcpd", SdkHttp(via_mcpd, admin), "echo", lambda: via_mcpd_, ("mcpd",)),
                    ("mcpd_raw", RawHttp(via_mcpd, admin), "echo", lambda: via_mcpd_, ("mcpd",)),
                    ("mcplocal", SdkHttp(f"{local}/mcp", tokens["bench"]), "bench__echo",
                     lambda: {"mcplocal": [proc.pid], **via_mcpd_}, ("mcplocal", "mcpd")),
                    ("mcplocal_raw", RawHttp(f"{local}/mcp", tokens["bench"]), "bench__echo",
                     lambda: {"mcplocal": [proc.pid], **via_mcpd_}, ("mcplocal", "mcpd")),
                    ("stdio_direct", sdk_stdio, "echo",
                     lambda: {"upstream": sdk_stdio.pids}, ("upstream",)),
                    ("stdio_direct_raw", raw_stdio, "echo",
                     lambda: {"upstream": raw_stdio.pids}, ("upstream",)),
                    ("stdio_mcpd", SdkHttp(via_stdio, admin), "echo",
                     lambda: {"mcpd": [mcpd_proc.pid], "upstream": children(mcpd_proc.pid)},
                     ("mcpd",)),
                    ("stdio_mcpd_raw", RawHttp(via_stdio, admin), "echo",
                     lambda: {"mcpd": [mcpd_proc.pid], "upstream": children(mcpd_proc.pid)},
                     ("mcpd",)),
                ]  # fmt: skip
                for path, client, tool, pids, serving in paths:
                    if args.paths and path not in args.paths.split(","):
                        continue
                    say(
                        f"proxy bench: {path}: {sequential} sequential calls,"
                        f" {calls} from {concurrency} clients"
                    )
                    row = anyio.run(
                        measure, client, calls, concurrency, tool, pids, serving, sequential
                    )
                    say(f"  {row}")
                    results.append({"path": path, **row})
                added = added_p50(results)
                listed_mcpd = listed = listed_sdk = rss = None
                opened = 0
                if not args.paths:  # (--paths: only those calls)
                    n = 20 if args.quick else 300
                    listed_mcpd = anyio.run(list_cached, via_mcpd, admin, n)
                    say(f"proxy bench: tools/list through mcpd (cached): p50 {listed_mcpd} ms")
                    listed = anyio.run(list_cached_raw, f"{local}/mcp", tokens["wide"], n)
                    say(
                        "proxy bench: tools/list 20 x 50 through mcplocal (cached):"
                        f" p50 {listed} ms"
                    )
                    listed_sdk = anyio.run(list_cached, f"{local}/mcp", tokens["wide"], n)
                    say(
                        "  the same in the MCP SDK's client (which validates it):"
                        f" p50 {listed_sdk} ms"
                    )
                    opened = anyio.run(open_sessions, f"{local}/mcp", tokens["bench"], sessions)
                    rss = rss_mb(proc.pid)
                    say(f"proxy bench: mcplocal RSS with {opened} open sessions: {rss} MB")
    print(
        json.dumps(
            {
                "results": results,
                "added_seq_p50_ms": added,
                "floor": "nginx" if nginx_binary() else "skipped: nginx is not installed",
                "list_cached_p50_ms": listed,
                "list_mcpd_p50_ms": listed_mcpd,
                "list_sdk_client_p50_ms": listed_sdk,
                "mcplocal_rss_mb": rss,
                "sessions": opened,
            }
        )
    )


if __name__ == "__main__":
    main()
