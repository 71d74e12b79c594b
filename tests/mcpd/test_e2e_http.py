"""End to end over real HTTP: ``mcpd serve`` as a subprocess, driven with httpx.

Runs once on a SQLite file and once on a schema of the test PostgreSQL database.
The process is always stopped (terminate, then kill), and its output is printed so
pytest shows it when a test fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers.launch import free_port, stop

ADMIN = "root@example.com"
PASSWORD = "correct horse battery"
MCPD = Path(sys.executable).with_name("mcpd")


@contextmanager
def mcpd_serve(
    db_url: str,
    workdir: Path,
    *,
    startup_s: float = 30.0,
    env: dict[str, str] | None = None,
    prefix: tuple[str, ...] = (),
) -> Iterator[str]:
    """Start ``mcpd serve`` on a free loopback port; yield its base URL; always stop it.
    ``env``: more of its environment (over the defaults); ``prefix``: a command it runs under."""
    with mcpd_process(db_url, workdir, startup_s=startup_s, env=env, prefix=prefix) as (_, base):
        yield base


@contextmanager
def mcpd_process(
    db_url: str,
    workdir: Path,
    *,
    startup_s: float = 30.0,
    env: dict[str, str] | None = None,
    prefix: tuple[str, ...] = (),
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """:func:`mcpd_serve`, yielding the process too (to kill it, say)."""
    port = free_port()
    log_path = workdir / f"mcpd-{port}.log"
    base_env = {k: v for k, v in os.environ.items() if k != "MCPD_SECRETS_KEY"}
    env = {
        **base_env,
        "MCPD_DATABASE_URL": db_url,
        "MCPD_BOOTSTRAP_ADMIN": ADMIN,
        "MCPD_BOOTSTRAP_PASSWORD": PASSWORD,
        "MCPD_SECRETS_KEY_FILE": str(workdir / "secrets.key"),
        **(env or {}),
    }
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*prefix, str(MCPD), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: nothing it starts outlives it
        )
        try:
            deadline = time.monotonic() + startup_s
            while True:
                if proc.poll() is not None:
                    raise AssertionError(f"mcpd exited with {proc.returncode} before it was ready")
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"mcpd was not ready within {startup_s} s")
                time.sleep(0.1)
            yield proc, base
        finally:
            stop(proc)
            sys.stderr.write(f"--- mcpd output ({log_path}) ---\n")
            sys.stderr.write(log_path.read_text(errors="replace"))


class Client:
    """A tiny httpx wrapper that asserts on status codes and names the request on failure."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=f"{base}/api/v1", timeout=10)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def call(self, method: str, path: str, bearer: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return self.http.request(method, path, headers=headers, **kw)

    def expect(
        self, status: int, method: str, path: str, bearer: str | None = None, **kw: Any
    ) -> Any:
        r = self.call(method, path, bearer, **kw)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def login(self, user: str, password: str) -> str:
        out = self.expect(200, "POST", "/auth/login", json={"username": user, "password": password})
        token: str = out["token"]
        return token


@pytest.mark.timeout(120)
def test_login_create_use_revoke_over_real_http(db_url: str, tmp_path: Path) -> None:
    with mcpd_serve(db_url, tmp_path) as base, Client(base) as c:
        admin = c.login(ADMIN, PASSWORD)
        assert c.expect(200, "GET", "/auth/me", admin)["user"] == ADMIN

        # objects: a server, a project using it, a user bound by an RbacDefinition
        server = {"name": "time", "transport": "http", "http": {"url": "http://127.0.0.1:9/mcp"}}
        c.expect(201, "POST", "/servers", admin, json=server)
        c.expect(201, "POST", "/projects", admin, json={"name": "web", "servers": ["time"]})
        c.expect(201, "POST", "/users", admin, json={"name": "dev", "password": "dev password"})
        c.expect(
            201,
            "POST",
            "/rbac",
            admin,
            json={
                "name": "dev-view",
                "subjects": ["User:dev"],
                "roleBindings": ["role:view,resource:servers"],
            },
        )
        dev = c.login("dev", "dev password")
        assert [s["name"] for s in c.expect(200, "GET", "/servers", dev)["items"]] == ["time"]
        assert c.call("DELETE", "/servers/time", dev).status_code == 403
        c.expect(204, "POST", "/auth/logout", dev)
        assert c.call("GET", "/servers", dev).status_code == 401

        # a token that may view servers in project web, used as a bearer
        created = c.expect(
            201,
            "POST",
            "/mcptokens",
            admin,
            json={"name": "ci", "project": "web", "bindings": ["role:view,resource:servers"]},
        )
        raw = created["token"]
        assert raw.startswith("mcpctl_pat_")
        listed = c.expect(200, "GET", "/projects/web/servers", raw)
        assert [s["name"] for s in listed["items"]] == ["time"]
        assert c.call("GET", "/servers", raw).status_code == 403  # outside its project
        me = c.expect(200, "GET", "/auth/me", raw)
        assert (me["tokenName"], me["project"]) == ("ci", "web")
        assert c.expect(200, "GET", "/mcptokens/introspect", raw)["status"] == "valid"

        # revoke: the very next request with it is a 401, and introspection says why
        c.expect(200, "POST", "/mcptokens/ci/revoke", admin)
        r = c.call("GET", "/projects/web/servers", raw)
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("application/problem+json")
        assert c.expect(200, "GET", "/mcptokens/introspect", raw)["status"] == "revoked"

        # everything above was audited, and the metrics saw it
        events = c.expect(200, "GET", "/auditevents?kind=mcptokens", admin)["items"]
        assert {e["action"] for e in events} >= {"create", "revoke"}
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        assert 'route="/api/v1/mcptokens/{name}/revoke"' in metrics
        assert 'mcpd_authz_decisions_total{kind="servers",outcome="deny"}' in metrics


@pytest.mark.timeout(120)
def test_state_survives_a_restart_over_real_http(db_url: str, tmp_path: Path) -> None:
    with mcpd_serve(db_url, tmp_path) as base, Client(base) as c:
        admin = c.login(ADMIN, PASSWORD)
        secret = {"name": "gh", "data": {"token": "value-that-must-not-leak"}}
        c.expect(201, "POST", "/secrets", admin, json=secret)
    with mcpd_serve(db_url, tmp_path) as base, Client(base) as c:  # same database and key
        assert c.call("GET", "/secrets/gh", admin).status_code == 200  # session kept
        got = c.expect(200, "GET", "/secrets/gh", admin)
        assert got["data"] == {"token": "***"}
        assert c.call("GET", "/users").status_code == 401
