"""Proxy benchmark: ``tools/call`` of a trivial tool, directly and through the proxies.

    .venv/bin/python bench/proxy.py [--quick] [--calls N] [--concurrency C] [--sessions S]

Starts, as subprocesses on loopback: upstream Streamable HTTP MCP servers
(``tests/servers/mcp_http.py``: ``demo``, and ``many`` with 50 tools), ``mcpd serve`` on a
SQLite file in a temporary directory with the upstreams registered as ``http`` servers,
and ``mcplocal serve`` following that mcpd. Then, in one run and with the same client code
(the MCP SDK's own ``ClientSession``, one per concurrent client, ``C`` = 16 by default),
it calls the ``echo`` tool:

* ``direct``:   on the upstream itself;
* ``mcpd``:     through ``/api/v1/servers/bench/mcp`` (the admin's session bearer);
* ``mcplocal``: through mcplocal's ``/mcp`` with an McpToken (client -> mcplocal -> mcpd
  -> upstream), as ``bench__echo``.

Each path gets a warm-up, then ``N`` calls spread over the clients; p50/p99 are per-call
latencies, ``rps_16`` is calls per second over the whole phase. ``list_cached_p50_ms`` is
the p50 of ``tools/list`` through mcplocal for a project of 20 upstream servers x 50 tools
(1,000 tools), answered from the caches, as plain JSON-RPC over HTTP
(``list_sdk_client_p50_ms``: the same timed in the MCP SDK's client, which validates the
~300 kB answer); ``list_mcpd_p50_ms`` the same for one server through mcpd (SDK client).
``mcplocal_rss_mb`` is mcplocal's resident memory with ``S`` (1,000) MCP
sessions open.

Progress goes to stderr; the last line of stdout is one JSON object::

    {"results": [{"path", "p50_ms", "p99_ms", "rps_16", "cpu_ms_per_call"}, ...],
     "list_cached_p50_ms": z, "list_mcpd_p50_ms": w, "list_sdk_client_p50_ms": v,
     "mcplocal_rss_mb": m, "sessions": S}

``--quick`` makes a handful of calls (for the smoke test); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
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

import anyio  # noqa: E402
import httpx  # noqa: E402
import httpx2  # noqa: E402
from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

ADMIN = "bench-admin"
PASSWORD = "bench admin password"
MCPD = Path(sys.executable).with_name("mcpd")
MCPLOCAL = Path(sys.executable).with_name("mcplocal")
PHASE_CAP_S = 120.0  # every phase stops here, whatever N is


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


async def measure(
    url: str,
    bearer: str | None,
    calls: int,
    concurrency: int,
    tool: str = "echo",
    cpu: Callable[[], float] | None = None,
) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    latencies: list[float] = []
    async with AsyncExitStack() as stack:
        sessions: list[ClientSession] = []
        for _ in range(concurrency):
            http = await stack.enter_async_context(httpx2.AsyncClient(headers=headers, timeout=30))
            read, write = await stack.enter_async_context(
                streamable_http_client(url, http_client=http)
            )
            session = await stack.enter_async_context(ClientSession(read, write))
            await session.initialize()
            await session.list_tools()
            sessions.append(session)
        for session in sessions:  # warm-up
            for _ in range(3):
                await session.call_tool(tool, {"text": "warm"})
        remaining = calls
        deadline = time.monotonic() + PHASE_CAP_S

        async def client(session: ClientSession) -> None:
            nonlocal remaining
            while remaining > 0 and time.monotonic() < deadline:
                remaining -= 1
                began = time.perf_counter()
                result = await session.call_tool(tool, {"text": "hello"})
                latencies.append((time.perf_counter() - began) * 1000)
                if result.is_error:
                    raise SystemExit(f"call failed: {result.content}")

        cpu_before = cpu() if cpu else 0.0
        began = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for session in sessions:
                tg.start_soon(client, session)
        elapsed = time.perf_counter() - began
        cpu_used = (cpu() - cpu_before) if cpu else 0.0
    return {
        "p50_ms": round(statistics.median(latencies), 3),
        "p99_ms": round(percentile(latencies, 0.99), 3),
        "rps_16": round(len(latencies) / elapsed, 1),
        # CPU of the process(es) serving the path, per timed call: steadier than wall time
        # on a busy machine (direct: the upstream; mcpd: mcpd; mcplocal: mcplocal + mcpd)
        "cpu_ms_per_call": round(cpu_used * 1000 / max(1, len(latencies)), 3),
    }


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few calls: a smoke test")
    parser.add_argument("--calls", type=int, default=2000, help="calls per path")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients")
    parser.add_argument("--sessions", type=int, default=1000, help="sessions for the RSS")
    args = parser.parse_args()
    calls = 32 if args.quick else args.calls
    concurrency = 4 if args.quick else args.concurrency

    sessions = 20 if args.quick else args.sessions
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp_s:
        tmp = Path(tmp_s)
        up_port, many_port, mcpd_port, local_port = (free_port() for _ in range(4))
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
            local_env = {
                **env,
                "MCPLOCAL_MCPD_URL": base,
                "MCPLOCAL_MCPD_TOKEN": admin,
                "MCPLOCAL_CACHE_DIR": str(tmp / "cache"),
                "MCPLOCAL_AUDIT_SPOOL_DIR": str(tmp / "audit"),
            }
            local_argv = [str(MCPLOCAL), "serve", "--host", "127.0.0.1", "--port", str(local_port)]
            via_mcpd = f"{base}/api/v1/servers/bench/mcp"
            results: list[dict[str, Any]] = []
            with process(local_argv, local_env, f"{local}/readyz", tmp / "mcplocal.log") as proc:
                paths = (
                    ("direct", upstream, None, "echo", (up_proc.pid,)),
                    ("mcpd", via_mcpd, admin, "echo", (mcpd_proc.pid,)),
                    ("mcplocal", f"{local}/mcp", tokens["bench"], "bench__echo",
                     (proc.pid, mcpd_proc.pid)),
                )  # fmt: skip
                for path, url, bearer, tool, pids in paths:
                    say(f"proxy bench: {path}: {calls} calls, {concurrency} clients")
                    cpu = lambda pids=pids: cpu_seconds(*pids)  # noqa: E731
                    row = anyio.run(measure, url, bearer, calls, concurrency, tool, cpu)
                    say(f"  {row}")
                    results.append({"path": path, **row})
                n = 20 if args.quick else 300
                listed_mcpd = anyio.run(list_cached, via_mcpd, admin, n)
                say(f"proxy bench: tools/list through mcpd (cached): p50 {listed_mcpd} ms")
                listed = anyio.run(list_cached_raw, f"{local}/mcp", tokens["wide"], n)
                say(f"proxy bench: tools/list 20 x 50 through mcplocal (cached): p50 {listed} ms")
                listed_sdk = anyio.run(list_cached, f"{local}/mcp", tokens["wide"], n)
                say(f"  the same in the MCP SDK's client (which validates it): p50 {listed_sdk} ms")
                opened = anyio.run(open_sessions, f"{local}/mcp", tokens["bench"], sessions)
                rss = rss_mb(proc.pid)
                say(f"proxy bench: mcplocal RSS with {opened} open sessions: {rss} MB")
    print(
        json.dumps(
            {
                "results": results,
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
