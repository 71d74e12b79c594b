"""Proxy benchmark: ``tools/call`` of a trivial tool, directly and through the proxies.

    .venv/bin/python bench/proxy.py [--quick] [--calls N] [--concurrency C]

Starts, as subprocesses on loopback: an upstream Streamable HTTP MCP server
(``tests/servers/mcp_http.py --kind demo``), and ``mcpd serve`` on a SQLite file in a
temporary directory with that upstream registered as an ``http`` server. Then, in one
run and with the same client code (the MCP SDK's own ``ClientSession``, one per
concurrent client, ``C`` = 16 by default), it calls the ``echo`` tool:

* ``direct``: on the upstream itself;
* ``mcpd``:   through ``/api/v1/servers/bench/mcp`` (the admin's session bearer).

Each path gets a warm-up, then ``N`` calls spread over the clients; p50/p99 are per-call
latencies, ``rps_16`` is calls per second over the whole phase. ``list_cached_p50_ms`` is
the p50 of ``tools/list`` through mcpd from one client, answered from mcpd's tools cache.

Progress goes to stderr; the last line of stdout is one JSON object::

    {"results": [{"path", "p50_ms", "p99_ms", "rps_16"}, ...], "list_cached_p50_ms": z}

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
from collections.abc import Iterator
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
PHASE_CAP_S = 120.0  # every phase stops here, whatever N is


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def process(argv: list[str], env: dict[str, str], ready_url: str, log: Path) -> Iterator[None]:
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
                    httpx.get(ready_url, timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{argv[0]} not ready in 30 s: see {log}") from None
                    time.sleep(0.1)
            yield
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


async def measure(url: str, bearer: str | None, calls: int, concurrency: int) -> dict[str, float]:
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
                await session.call_tool("echo", {"text": "warm"})
        remaining = calls
        deadline = time.monotonic() + PHASE_CAP_S

        async def client(session: ClientSession) -> None:
            nonlocal remaining
            while remaining > 0 and time.monotonic() < deadline:
                remaining -= 1
                began = time.perf_counter()
                result = await session.call_tool("echo", {"text": "hello"})
                latencies.append((time.perf_counter() - began) * 1000)
                if result.is_error:
                    raise SystemExit(f"call failed: {result.content}")

        began = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for session in sessions:
                tg.start_soon(client, session)
        elapsed = time.perf_counter() - began
    return {
        "p50_ms": round(statistics.median(latencies), 3),
        "p99_ms": round(percentile(latencies, 0.99), 3),
        "rps_16": round(len(latencies) / elapsed, 1),
    }


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few calls: a smoke test")
    parser.add_argument("--calls", type=int, default=2000, help="calls per path")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients")
    args = parser.parse_args()
    calls = 32 if args.quick else args.calls
    concurrency = 4 if args.quick else args.concurrency

    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp_s:
        tmp = Path(tmp_s)
        up_port, mcpd_port = free_port(), free_port()
        upstream = f"http://127.0.0.1:{up_port}/mcp"
        base = f"http://127.0.0.1:{mcpd_port}"
        env = {
            **os.environ,
            "MCPD_DATABASE_URL": f"sqlite:///{tmp / 'mcpd.db'}",
            "MCPD_BOOTSTRAP_ADMIN": ADMIN,
            "MCPD_BOOTSTRAP_PASSWORD": PASSWORD,
            "MCPD_SECRETS_KEY_FILE": str(tmp / "secrets.key"),
            "MCPD_LOG_DIR": str(tmp / "logs"),
        }
        env.pop("MCPD_SECRETS_KEY", None)
        up_argv = [sys.executable, "-m", "tests.servers.mcp_http", "--kind", "demo"]
        mcpd_argv = [str(MCPD), "serve", "--host", "127.0.0.1", "--port", str(mcpd_port)]
        with (
            process([*up_argv, "--port", str(up_port)], env, upstream, tmp / "upstream.log"),
            process(mcpd_argv, env, f"{base}/healthz", tmp / "mcpd.log"),
        ):
            login = httpx.post(
                f"{base}/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD}
            )
            login.raise_for_status()
            admin = login.json()["token"]
            created = httpx.post(
                f"{base}/api/v1/servers",
                headers={"Authorization": f"Bearer {admin}"},
                json={"name": "bench", "transport": "http", "http": {"url": upstream}},
            )
            created.raise_for_status()
            via_mcpd = f"{base}/api/v1/servers/bench/mcp"
            results: list[dict[str, Any]] = []
            for path, url, bearer in (("direct", upstream, None), ("mcpd", via_mcpd, admin)):
                say(f"proxy bench: {path}: {calls} calls, {concurrency} clients")
                row = anyio.run(measure, url, bearer, calls, concurrency)
                say(f"  {row}")
                results.append({"path": path, **row})
            listed = anyio.run(list_cached, via_mcpd, admin, 20 if args.quick else 300)
            say(f"proxy bench: tools/list through mcpd (cached): p50 {listed} ms")
    print(json.dumps({"results": results, "list_cached_p50_ms": listed}))


if __name__ == "__main__":
    main()
