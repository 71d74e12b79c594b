"""Two mcpd replicas and two mcplocal replicas on one real PostgreSQL, as real processes.

Used by tests/replicas and bench/propagation.py. Everything listens on 127.0.0.1; every
process is stopped (SIGTERM, then SIGKILL of its group) and the database dropped on exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from tests.servers.launch import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ADMIN = "root@example.com"
PASSWORD = "correct horse battery"
PG_ADMIN_URL = os.environ.get(
    "MCPCTL_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def database(admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    name = f"mcpctl_replicas_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def process(argv: list[str], env: dict[str, str], ready: str, log: Path) -> Iterator[int]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise AssertionError(f"{argv[:2]} exited: {log.read_text()[-3000:]}")
                with suppress(httpx.TransportError):
                    if httpx.get(ready, timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise AssertionError(f"{argv[:2]} not ready: {log.read_text()[-3000:]}")
                time.sleep(0.05)
            yield proc.pid
        finally:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@dataclass
class Cluster:
    mcpd: list[str]  # base URLs of replicas A and B
    mcplocal: list[str]  # mcplocal A follows mcpd A, mcplocal B follows mcpd B
    admin: str
    workdir: Path
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    def api(self, replica: int, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(
            method,
            f"{self.mcpd[replica]}/api/v1{path}",
            headers={"Authorization": f"Bearer {self.admin}"},
            **kw,
        )
        assert r.status_code < 300, (method, path, r.status_code, r.text)
        return r.json() if r.content else None

    def can(self, replica: int, subject: str, action: str, kind: str, name: str = "") -> bool:
        body = {"subject": subject, "action": action, "kind": kind, "name": name}
        return bool(self.api(replica, "POST", "/auth/can-i", json=body)["allowed"])

    def mcp(
        self, local: int, bearer: str, method: str, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        """One JSON-RPC request to a (stateless) mcplocal replica."""
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
        if params is not None:
            body["params"] = params
        return self.http.post(
            f"{self.mcplocal[local]}/mcp",
            headers={
                "Authorization": f"Bearer {bearer}",
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": "2025-06-18",
            },
            json=body,
        )


@contextmanager
def cluster(
    workdir: Path, pg_admin_url: str = PG_ADMIN_URL, mcplocals: int = 2
) -> Iterator[Cluster]:
    """The replicas, on a new database of the PostgreSQL server ``pg_admin_url`` names (the
    shared one by default; a test that restarts it passes a private one, private_pg.py);
    ``mcplocals``: how many of the two mcplocal replicas to start (A first)."""
    with ExitStack() as stack:
        db = stack.enter_context(database(pg_admin_url))
        base_env = {
            **os.environ,
            "MCPD_DATABASE_URL": db,
            "MCPD_SECRETS_KEY_FILE": str(workdir / "secrets.key"),
            "MCPD_LOG_DIR": str(workdir / "logs"),
            "MCPD_BOOTSTRAP_ADMIN": ADMIN,
            "MCPD_BOOTSTRAP_PASSWORD": PASSWORD,
        }
        base_env.pop("MCPD_SECRETS_KEY", None)
        mcpds = []
        for name in ("a", "b"):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            argv = [str(BIN / "mcpd"), "serve", "--host", "127.0.0.1", "--port", str(port)]
            stack.enter_context(
                process(argv, base_env, f"{url}/readyz", workdir / f"mcpd-{name}.log")
            )
            mcpds.append(url)
        login = httpx.post(
            f"{mcpds[0]}/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD}
        )
        admin = login.json()["token"]
        locals_ = []
        for name, mcpd_url in list(zip(("a", "b"), mcpds, strict=True))[:mcplocals]:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            env = {
                **os.environ,
                "MCPLOCAL_MCPD_URL": mcpd_url,
                "MCPLOCAL_MCPD_USER": ADMIN,
                "MCPLOCAL_MCPD_PASSWORD": PASSWORD,
                "MCPLOCAL_CACHE_DIR": str(workdir / "cache"),  # shared, like a RWX volume
                "MCPLOCAL_AUDIT_SPOOL_DIR": str(workdir / f"audit-{name}"),  # each its own
                "MCPLOCAL_STATELESS": "true",
            }
            argv = [str(BIN / "mcplocal"), "serve", "--host", "127.0.0.1", "--port", str(port)]
            stack.enter_context(
                process(argv, env, f"{url}/readyz", workdir / f"mcplocal-{name}.log")
            )
            locals_.append(url)
        c = Cluster(mcpds, locals_, admin, workdir)
        try:
            yield c
        finally:
            c.http.close()


def wait_until(pred: Any, timeout: float, step: float = 0.002) -> float:
    """Seconds until ``pred()`` held; AssertionError after ``timeout``."""
    began = time.monotonic()
    while not pred():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(step)
    return time.monotonic() - began
