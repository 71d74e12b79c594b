"""Audit delivery benchmark: mcplocal's spool and delivery into a real mcpd, end to end.

    .venv/bin/python bench/audit.py [--quick] [--rate R] [--seconds S] [--db URL] [--chaos]
                                    [--linger L]

Starts ``mcpd serve`` as a subprocess (SQLite in a temporary directory, or ``--db``, e.g.
a PostgreSQL database of your own), logs in a user with ``action:proxy`` (what
mcplocal is), and drives mcplocal's own :class:`mcplocal.audit.AuditReporter` - the spool
with its group-committed fsync, the delivery loop, ``POST /api/v1/auditevents`` - in this
process, as mcplocal does for its calls: ``R`` records a second (2,000) for ``S`` seconds
(10), each written by its own task, as a call does before it is answered.

* ``ingested_per_s``: records mcpd committed per second over the phase (its 202 comes
  after the commit), ``max_per_s`` the same with no pacing (as fast as it goes);
* ``delay_p50_ms`` / ``delay_p99_ms``: from the record's ``report`` (the call's decision)
  to mcpd's commit of it;
* ``report_p50_ms`` / ``report_p99_ms``: what the spool adds to a call (the wait for the
  group's write + fsync), ``fsync_per_record`` how many group writes (each with its
  ``fsync``, in the ``fsync: true`` row; without, each record is written at once: 1) a
  record costs;
* ``spool_bytes_per_record``: bytes the spool wrote per record;
* ``cpu_ms_per_record``: CPU of this process (spool + delivery) and of mcpd, per record
  (``_mcplocal``, ``_mcpd`` and, for a PostgreSQL ``--db`` on this machine, ``_database``,
  its server processes for that database: each apart; ``unpaced_...``: the unpaced phase).

``--chaos`` adds the 30 s outage: mcpd is killed (SIGKILL) under a steady 200 records/s,
kept away 30 s, started again; ``chaos_lost`` and ``chaos_doubled`` count the records
missing from, or twice in, mcpd's log afterwards (both must be 0). Progress goes to
stderr; the last line of stdout is one JSON object. ``--quick``: a short smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402
import httpx  # noqa: E402

from bench.proxy import (  # noqa: E402
    ADMIN,
    MCPD,
    PASSWORD,
    cpu_seconds,
    free_port,
    percentile,
    process,
    say,
)
from mcplocal.audit import AuditReporter, CallRecord  # noqa: E402

PROXY_USER = "bench-mcplocal"


class Timed(AuditReporter):
    """The reporter, noting when mcpd committed each record (its answer to the batch)."""

    committed: dict[str, float]
    answered: int  # records in batches mcpd answered (a batch sent again counts twice)

    async def _send(self, mcpd: Any, lines: list[bytes]) -> None:
        await super()._send(mcpd, lines)
        now = time.perf_counter()
        for line in lines:
            self.committed[line[line.index(b'"id":"') + 6 :][:36].decode()] = now
        self.answered += len(lines)


def reporter(base: str, bearer: str, spool: Path, linger: float = 0.25) -> Timed:
    r = Timed(base, bearer, spool, linger=linger)
    r.committed = {}
    r.answered = 0
    return r


def one(n: int) -> CallRecord:
    return CallRecord(
        server="bench",
        tool="echo",
        project="bench",
        outcome="allow",
        duration_ms=1.25,
        token_name="bench",
        token_sha="ab" * 32,
        request_id=f"bench-{n}",
        reason="allowed by `p, McpToken:..., bench, servers, *, role:run, allow` (db:rbac/x#5)",
        policy_revision="0123456789ab",
    )


async def phase(
    r: Timed, rate: float | None, seconds: float, total: int | None = None
) -> dict[str, Any]:
    """Report records (paced at ``rate``, or ``total`` as fast as they go) while the reporter
    delivers; wait until mcpd committed them all."""
    reported: dict[str, float] = {}
    waits: list[float] = []
    fsyncs0, records0, answered0 = r.spool.writes, r.spool.records, r.answered

    async def report(rec: CallRecord) -> None:
        began = time.perf_counter()
        reported[rec.id] = began
        await r.report(rec)
        waits.append(time.perf_counter() - began)

    began = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(r.run)
        async with anyio.create_task_group() as producers:
            n = 0
            if rate is not None:
                tick = 0.01
                while time.perf_counter() - began < seconds:
                    due = int((time.perf_counter() - began) * rate)
                    while n < due:
                        producers.start_soon(report, one(n))
                        n += 1
                    await anyio.sleep(tick)
            else:
                assert total is not None
                for n in range(total):
                    producers.start_soon(report, one(n))
                    if n % 200 == 0:
                        await anyio.sleep(0)
        deadline = time.perf_counter() + 120
        # the cheap count first: the id sets (20,000 each) compared every 20 ms were CPU of
        # this process counted as the spool's and the delivery's
        while r.answered - answered0 < len(reported) or len(
            r.committed.keys() & reported.keys()
        ) < len(reported):
            if time.perf_counter() > deadline:
                raise SystemExit("mcpd did not commit every record within 120 s")
            await anyio.sleep(0.02)
        ended = max(r.committed[i] for i in reported)
        tg.cancel_scope.cancel()
    delays = [r.committed[i] - t for i, t in reported.items()]
    records = r.spool.records - records0
    return {
        "records": len(reported),
        "per_s": round(len(reported) / (ended - began), 1),
        "delay_p50_ms": round(percentile(delays, 0.5) * 1000, 1),
        "delay_p99_ms": round(percentile(delays, 0.99) * 1000, 1),
        "report_p50_ms": round(percentile(waits, 0.5) * 1000, 2),
        "report_p99_ms": round(percentile(waits, 0.99) * 1000, 2),
        "fsync_per_record": round((r.spool.writes - fsyncs0) / max(records, 1), 4),
    }


def audit_ids(base: str, admin: str) -> Counter[str]:
    seen: Counter[str] = Counter()
    before = None
    with httpx.Client(
        base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {admin}"}, timeout=60
    ) as api:
        while True:
            params: dict[str, Any] = {"action": "call", "limit": 1000}
            if before:
                params["before"] = before
            page = api.get("/auditevents", params=params).json()
            seen.update(str(e["eventId"]) for e in page["items"])
            before = page.get("next")
            if not before:
                return seen


def chaos(
    env: dict[str, str],
    argv: list[str],
    base: str,
    bearer: str,
    admin: str,
    spool: Path,
    tmp: Path,
    outage: float,
) -> dict[str, Any]:
    """A steady 200 records/s; mcpd killed, kept away ``outage`` s, started again."""
    r = reporter(base, bearer, spool)
    ids: list[str] = []

    def start() -> subprocess.Popen[bytes]:
        out = (tmp / "mcpd-chaos.log").open("ab")
        proc = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    return proc
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("mcpd did not come back")
            time.sleep(0.1)

    proc = start()

    async def run() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(r.run)
            t0 = time.monotonic()
            killed = restarted = False
            n = 0
            while time.monotonic() - t0 < outage + 10:
                rec = one(n)
                n += 1
                ids.append(rec.id)
                tg.start_soon(r.report, rec)
                elapsed = time.monotonic() - t0
                if not killed and elapsed > 3:
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed = True
                    say(f"audit bench: mcpd killed; away {outage:g} s")
                if killed and not restarted and elapsed > 3 + outage:
                    await anyio.to_thread.run_sync(start)
                    restarted = True
                    say("audit bench: mcpd back")
                await anyio.sleep(0.005)
            deadline = time.monotonic() + 60
            while r.spool.pending and time.monotonic() < deadline:
                await anyio.sleep(0.1)
            tg.cancel_scope.cancel()

    nonlocal_proc = [proc]
    try:
        anyio.run(run)
        seen = audit_ids(base, admin)
        mine = Counter({i: seen[i] for i in ids if i in seen})
        return {
            "chaos_outage_s": outage,
            "chaos_records": len(ids),
            "chaos_lost": sum(1 for i in ids if i not in seen),
            "chaos_doubled": sum(1 for n in mine.values() if n > 1),
        }
    finally:
        r.spool.close()
        for p in nonlocal_proc:
            with_kill(p)


WHO = ("mcplocal", "mcpd", "database")


def database_backends(url: str | None) -> Callable[[], dict[int, float]]:
    """For a PostgreSQL ``--db`` (on this machine): the CPU seconds of each server process
    serving that database now (what mcpd's statements cost the server); else nothing."""
    if not url or not url.startswith("postgresql"):
        return dict
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)

    def backends() -> dict[int, float]:
        with engine.connect() as conn:
            pids = conn.execute(
                sa.text(
                    "SELECT pid FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalars()
            out = {}
            for pid in pids:
                with suppress(OSError):  # gone meanwhile, or on another host
                    out[pid] = cpu_seconds(pid)
            return out

    return backends


def spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def with_kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rate", type=float, default=2000.0, help="records per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the paced phase")
    parser.add_argument("--max-records", type=int, default=20000, help="the unpaced phase")
    parser.add_argument(
        "--linger", type=float, default=0.25, help="delivery's linger (MCPLOCAL_AUDIT_...)"
    )
    parser.add_argument("--db", default=None, help="mcpd's database URL (default: SQLite)")
    parser.add_argument("--chaos", action="store_true", help="add the 30 s mcpd outage")
    parser.add_argument("--outage", type=float, default=30.0, help="--chaos: seconds away")
    args = parser.parse_args()
    seconds = 1.0 if args.quick else args.seconds
    rate = 200.0 if args.quick else args.rate
    max_records = 500 if args.quick else args.max_records
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp_s:
        tmp = Path(tmp_s)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "MCPD_DATABASE_URL": args.db or f"sqlite:///{tmp / 'mcpd.db'}",
            "MCPD_BOOTSTRAP_ADMIN": ADMIN,
            "MCPD_BOOTSTRAP_PASSWORD": PASSWORD,
            "MCPD_SECRETS_KEY_FILE": str(tmp / "secrets.key"),
            "MCPD_LOG_DIR": str(tmp / "logs"),
        }
        env.pop("MCPD_SECRETS_KEY", None)
        argv = [str(MCPD), "serve", "--host", "127.0.0.1", "--port", str(port)]
        backends = database_backends(args.db)
        out: dict[str, Any] = {}
        with process(argv, env, f"{base}/readyz", tmp / "mcpd.log") as mcpd:
            login = httpx.post(
                f"{base}/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD}
            )
            admin = login.json()["token"]
            api = httpx.Client(
                base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {admin}"}
            )
            api.post("/users", json={"name": PROXY_USER, "password": PASSWORD}).raise_for_status()
            api.post(
                "/rbac",
                json={
                    "name": "proxy",
                    "subjects": [f"User:{PROXY_USER}"],
                    "roleBindings": ["action:proxy"],
                },
            ).raise_for_status()
            bearer = api.post(
                "/auth/login", json={"username": PROXY_USER, "password": PASSWORD}
            ).json()["token"]
            for fsync in (True, False):
                r = reporter(base, bearer, tmp / f"spool-{fsync}", args.linger)
                r.spool.fsync = fsync
                say(f"audit bench: {rate:g} records/s for {seconds:g} s (fsync {fsync})")
                cpu: list[tuple[float, float, float]] = []  # (this, mcpd, database) a phase

                async def both(
                    r: Timed = r, cpu: list[tuple[float, float, float]] = cpu, fsync: bool = fsync
                ) -> tuple[dict[str, Any], dict[str, Any]]:
                    cpu0, mine0, db0 = cpu_seconds(mcpd.pid), time.process_time(), backends()
                    paced = await phase(r, rate, seconds)
                    cpu1, mine1, db1 = cpu_seconds(mcpd.pid), time.process_time(), backends()
                    cpu.append((mine1 - mine0, cpu1 - cpu0, spent(db0, db1)))
                    say(f"audit bench: {max_records} records unpaced (fsync {fsync})")
                    unpaced = await phase(r, None, 0.0, max_records)
                    cpu.append(
                        (
                            time.process_time() - mine1,
                            cpu_seconds(mcpd.pid) - cpu1,
                            spent(db1, backends()),
                        )
                    )
                    return paced, unpaced

                paced, unpaced = anyio.run(both)
                row = {
                    "fsync": fsync,
                    "rate": rate,
                    "ingested_per_s": paced["per_s"],
                    "max_per_s": unpaced["per_s"],
                    **{
                        k: paced[k]
                        for k in (
                            "delay_p50_ms",
                            "delay_p99_ms",
                            "report_p50_ms",
                            "report_p99_ms",
                            "fsync_per_record",
                        )
                    },
                    "unpaced_delay_p99_ms": unpaced["delay_p99_ms"],
                    "spool_bytes_per_record": round(r.spool.written / max(r.spool.records, 1), 1),
                    "cpu_ms_per_record": round(sum(cpu[0]) * 1000 / max(paced["records"], 1), 3),
                    **{
                        f"cpu_ms_per_record_{who}": round(
                            cpu[0][i] * 1000 / max(paced["records"], 1), 3
                        )
                        for i, who in enumerate(WHO[: 2 + bool(args.db)])
                    },
                    **{
                        f"unpaced_cpu_ms_per_record_{who}": round(
                            cpu[1][i] * 1000 / max(unpaced["records"], 1), 3
                        )
                        for i, who in enumerate(WHO[: 2 + bool(args.db)])
                    },
                }
                r.spool.close()
                out.setdefault("results", []).append(row)
                say(f"audit bench: {row}")
            seen = audit_ids(base, admin)
            out["doubled"] = sum(1 for n in seen.values() if n > 1)
        if args.chaos:
            env["MCPD_DATABASE_URL"] = args.db or f"sqlite:///{tmp / 'mcpd.db'}"
            out.update(
                chaos(
                    env,
                    argv,
                    base,
                    bearer,
                    admin,
                    tmp / "spool-chaos",
                    tmp,
                    3.0 if args.quick else args.outage,
                )
            )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
