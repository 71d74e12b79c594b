"""mcpd HTTP benchmark: a real ``mcpd serve`` over loopback, on SQLite and on PostgreSQL.

    .venv/bin/python bench/mcpd.py [--quick] [--db sqlite|postgresql|both]

For each database it starts ``mcpd serve`` as a subprocess (a SQLite file in a temporary
directory, or a PostgreSQL database it creates on 127.0.0.1:5432 as user postgres and
drops afterwards), logs in as the bootstrap admin, creates 100 servers, then measures with
32 concurrent keep-alive clients:

* ``get``: ``GET /api/v1/servers`` (the admin's session bearer; the page holds all 100);
* ``create``: ``POST /api/v1/projects``, each with a new name (a row, an audit event, a commit).

Each phase sends a fixed number of requests (3000 GETs, 1000 creates) after a short
warm-up, and stops early at a time cap. The load generator is a minimal HTTP/1.1 client on
asyncio streams, so that on a small machine the server, not the client, is what is measured.

Progress goes to stderr; the last line of stdout is one JSON object::

    {"results": [{"db", "op", "rps", "p50_ms", "p99_ms", "cpu_ms_per_req"}, ...]}

``cpu_ms_per_req`` is mcpd's own CPU (user + system, ``/proc/<pid>/stat``) per timed request:
steadier than the wall-time figures on a busy machine.

``--quick`` sends a handful of requests (for the smoke test); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# As a script, this file's directory comes first on sys.path, and this file is named
# mcpd.py: it would shadow the `mcpd` package. Drop the directory before importing.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

ADMIN = "bench-admin"
PASSWORD = "bench admin password"
PG_ADMIN_URL = os.environ.get(
    "MCPCTL_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
MCPD = Path(sys.executable).with_name("mcpd")


@dataclass(frozen=True)
class Plan:
    servers: int = 100
    clients: int = 32
    gets: int = 3000
    creates: int = 1000
    warmup: int = 200
    phase_cap_s: float = 120.0


QUICK = Plan(servers=10, clients=4, gets=40, creates=20, warmup=5, phase_cap_s=30.0)


def say(msg: str) -> None:
    print(f"[bench/mcpd] {msg}", file=sys.stderr, flush=True)


# -- the server --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new PostgreSQL database on 127.0.0.1:5432, dropped afterwards."""
    name = f"mcpd_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def mcpd_serve(db_url: str, workdir: Path) -> Iterator[tuple[str, int, int]]:
    """``mcpd serve`` on a free loopback port; yields (host, port, pid); always stopped."""
    port = _free_port()
    log_path = workdir / f"mcpd-{port}.log"
    env = {
        **os.environ,
        "MCPD_DATABASE_URL": db_url,
        "MCPD_BOOTSTRAP_ADMIN": ADMIN,
        "MCPD_BOOTSTRAP_PASSWORD": PASSWORD,
        "MCPD_SECRETS_KEY_FILE": str(workdir / "secrets.key"),
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(MCPD), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        ok = False
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"mcpd exited with {proc.returncode} before it was ready")
                with suppress(httpx.TransportError):
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("mcpd was not ready within 60 s")
                time.sleep(0.1)
            yield "127.0.0.1", port, proc.pid
            ok = True
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=15)
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            if not ok:
                tail = log_path.read_text(errors="replace")[-4000:]
                say(f"mcpd output (last 4000 characters):\n{tail}")


# -- a minimal keep-alive HTTP/1.1 client --------------------------------------------------


class Conn:
    """One keep-alive connection; requests are sent one after another."""

    def __init__(self, host: str, port: int, bearer: str) -> None:
        self.host, self.port = host, port
        self.head = f"Host: {host}:{port}\r\nAuthorization: Bearer {bearer}\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with suppress(OSError):
                await self.writer.wait_closed()

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        extra = b""
        if body is not None:
            extra = b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        self.writer.write(
            f"{method} {path} HTTP/1.1\r\n".encode() + self.head + extra + b"\r\n" + (body or b"")
        )
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            if key == b"content-length":
                length = int(value)
            elif key == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if not chunked:
            return status, await self.reader.readexactly(length)
        parts = []
        while True:
            size = int((await self.reader.readline()).split(b";")[0], 16)
            data = await self.reader.readexactly(size + 2)
            if size == 0:
                return status, b"".join(parts)
            parts.append(data[:-2])


@dataclass
class Phase:
    latencies_s: list[float]
    wall_s: float
    errors: int
    cpu_s: float = 0.0  # the server's CPU over the phase


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_phase(
    host: str,
    port: int,
    bearer: str,
    *,
    clients: int,
    total: int,
    cap_s: float,
    make: Any,
    expect: int,
) -> Phase:
    """``total`` requests from ``clients`` connections; ``make(i)`` gives (method, path, body)."""
    conns = [Conn(host, port, bearer) for _ in range(clients)]
    await asyncio.gather(*(c.open() for c in conns))
    latencies: list[float] = []
    errors = 0
    next_i = 0
    start = time.perf_counter()
    deadline = start + cap_s

    async def worker(conn: Conn) -> None:
        nonlocal next_i, errors
        while next_i < total and time.perf_counter() < deadline:
            i = next_i
            next_i += 1
            method, path, body = make(i)
            t0 = time.perf_counter()
            status, _ = await conn.request(method, path, body)
            latencies.append(time.perf_counter() - t0)
            if status != expect:
                errors += 1

    try:
        async with asyncio.timeout(cap_s + 30):
            await asyncio.gather(*(worker(c) for c in conns))
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    wall = time.perf_counter() - start
    if len(latencies) < total:
        say(f"time cap of {cap_s:.0f} s reached after {len(latencies)} of {total} requests")
    return Phase(latencies, wall, errors)


def _quantile_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


def _row(db: str, op: str, phase: Phase) -> dict[str, Any]:
    n = len(phase.latencies_s)
    return {
        "db": db,
        "op": op,
        "rps": round(n / phase.wall_s, 1) if phase.wall_s else 0.0,
        "p50_ms": round(statistics.median(phase.latencies_s) * 1000, 3),
        "p99_ms": _quantile_ms(phase.latencies_s, 0.99),
        "cpu_ms_per_req": round(phase.cpu_s * 1000 / max(1, n), 3),
    }


# -- one database --------------------------------------------------------------------------


def _setup(base: str, plan: Plan) -> str:
    with httpx.Client(base_url=f"{base}/api/v1", timeout=30) as c:
        r = c.post("/auth/login", json={"username": ADMIN, "password": PASSWORD})
        r.raise_for_status()
        bearer: str = r.json()["token"]
        h = {"Authorization": f"Bearer {bearer}"}
        for i in range(plan.servers):
            spec = {
                "name": f"srv-{i:04d}",
                "description": f"benchmark server {i}",
                "transport": "stdio",
                "stdio": {"command": "mcp-server-bench", "args": ["--n", str(i)]},
            }
            c.post("/servers", json=spec, headers=h).raise_for_status()
        page = c.get("/servers", params={"limit": 500}, headers=h).json()
        assert len(page["items"]) == plan.servers, page
    return bearer


def bench_db(db: str, db_url: str, workdir: Path, plan: Plan) -> list[dict[str, Any]]:
    with mcpd_serve(db_url, workdir) as (host, port, pid):
        base = f"http://{host}:{port}"
        say(f"{db}: mcpd up on {base}; creating {plan.servers} servers")
        bearer = _setup(base, plan)
        list_path = f"/api/v1/servers?limit={max(plan.servers, 100)}"
        run = f"{uuid.uuid4().hex[:6]}"

        def get(_: int) -> tuple[str, str, bytes | None]:
            return "GET", list_path, None

        def creator(prefix: str) -> Any:
            def create(i: int) -> tuple[str, str, bytes | None]:
                name = f"{prefix}-{run}-{i}"
                return "POST", "/api/v1/projects", json.dumps({"name": name}).encode()

            return create

        rows = []
        phases = (
            ("get", get, get, plan.gets, 200),
            ("create", creator("w"), creator("p"), plan.creates, 201),
        )
        for op, warm, make, total, expect in phases:
            say(f"{db}: {op}: warm-up, then {total} requests from {plan.clients} clients")
            for n, fn in ((plan.warmup, warm), (total, make)):
                cpu_before = cpu_seconds(pid)
                phase = asyncio.run(
                    run_phase(
                        host,
                        port,
                        bearer,
                        clients=plan.clients,
                        total=n,
                        cap_s=plan.phase_cap_s,
                        make=fn,
                        expect=expect,
                    )
                )
                phase.cpu_s = cpu_seconds(pid) - cpu_before
                if phase.errors:
                    raise RuntimeError(f"{db} {op}: {phase.errors} responses were not {expect}")
            row = _row(db, op, phase)
            say(
                f"{db}: {op}: {row['rps']} req/s, p50 {row['p50_ms']} ms, "
                f"p99 {row['p99_ms']} ms, {row['cpu_ms_per_req']} ms CPU per request"
            )
            rows.append(row)
        return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a handful of requests (smoke test)")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mcpd-bench-") as tmp:
        workdir = Path(tmp)
        if args.db in ("sqlite", "both"):
            sqlite_dir = workdir / "sqlite"
            sqlite_dir.mkdir()
            results += bench_db("sqlite", f"sqlite:///{sqlite_dir / 'mcpd.db'}", sqlite_dir, plan)
        if args.db in ("postgresql", "both"):
            pg_dir = workdir / "postgresql"
            pg_dir.mkdir()
            with postgres_database() as url:
                results += bench_db("postgresql", url, pg_dir, plan)
    print(json.dumps({"results": results}), flush=True)


if __name__ == "__main__":
    main()
