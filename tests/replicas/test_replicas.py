"""Several replicas on one real PostgreSQL: changes through one are enforced by all within a
second; one MCP conversation may hop between mcplocal replicas; a PostgreSQL restart is
survived without restarting anything and without losing a committed change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.replicas.cluster import Cluster, cluster, wait_until
from tests.replicas.private_pg import private_postgresql

pytestmark = pytest.mark.postgres
DEMO = {
    "transport": "stdio",
    "stdio": {"command": sys.executable, "args": ["-m", "tests.servers.stdio_server"]},
}


def setup_project(c: Cluster) -> str:
    c.api(0, "POST", "/servers", json={"name": "demo", **DEMO})
    c.api(0, "POST", "/projects", json={"name": "web", "servers": ["demo"]})
    token: str = c.api(
        0,
        "POST",
        "/mcptokens",
        json={"name": "t1", "project": "web", "bindings": ["role:run,resource:servers"]},
    )["token"]
    return token


def call(c: Cluster, local: int, token: str) -> httpx.Response:
    return c.mcp(local, token, "tools/call", {"name": "demo__add", "arguments": {"a": 2, "b": 3}})


def _server_names(c: Cluster, replica: int) -> list[str]:
    return [s["name"] for s in c.api(replica, "GET", "/servers")["items"]]


def test_changes_reach_every_replica_within_a_second(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        # B keeps its server list (mcpd.changes) until A's commit is announced
        assert _server_names(c, 1) == _server_names(c, 1) == []
        token = setup_project(c)
        wait_until(lambda: _server_names(c, 1) == ["demo"], 1.0)
        c.api(1, "PUT", "/servers/demo", json={"description": "through B"})
        wait_until(
            lambda: c.api(0, "GET", "/servers")["items"][0]["description"] == "through B", 1.0
        )
        # a token made through A is known to mcplocal B (which follows mcpd B) within 1 s
        wait_until(lambda: c.mcp(1, token, "ping").status_code == 200, 1.0)
        # one conversation, alternating between the two mcplocal replicas (stateless)
        init = c.mcp(0, token, "initialize", {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"},
        })  # fmt: skip
        assert init.status_code == 200, init.text
        for local in (1, 0, 1):
            listed = c.mcp(local, token, "tools/list", {})
            assert listed.status_code == 200 and "demo__add" in listed.text, listed.text
        for local in (0, 1):
            r = call(c, local, token)
            assert r.status_code == 200 and '"text":"5"' in r.text.replace(" ", ""), r.text

        # revoke through A: mcplocal B refuses within a second
        c.api(0, "POST", "/mcptokens/t1/revoke")
        took = wait_until(lambda: call(c, 1, token).status_code == 401, timeout=1.0)
        assert took < 1.0

        # bind through A: B allows within a second
        c.api(0, "POST", "/users", json={"name": "dev@example.com", "password": "pw-123456789"})
        assert not c.can(1, "User:dev@example.com", "delete", "secrets", "x")
        rbac = {"name": "dev", "subjects": ["User:dev@example.com"],
                "roleBindings": ["role:edit,resource:secrets"]}  # fmt: skip
        c.api(0, "POST", "/rbac", json=rbac)
        wait_until(lambda: c.can(1, "User:dev@example.com", "delete", "secrets", "x"), 1.0)
        # and the other way round
        c.api(1, "DELETE", "/rbac/dev")
        wait_until(lambda: not c.can(0, "User:dev@example.com", "delete", "secrets", "x"), 1.0)


def test_postgresql_restart_is_survived(tmp_path: Path) -> None:
    with private_postgresql() as pg, cluster(tmp_path, pg.admin_url) as c:
        token = setup_project(c)
        c.api(0, "POST", "/users", json={"name": "kept@example.com", "password": "pw-123456789"})
        pg.restart()  # a private one: the shared PostgreSQL serves every other test
        for base in c.mcpd:  # both come back by themselves
            wait_until(lambda b=base: httpx.get(f"{b}/readyz").status_code == 200, 60, 0.2)
        names = {u["name"] for u in c.api(1, "GET", "/users")["items"]}
        assert "kept@example.com" in names  # nothing committed was lost
        # replication reconnected: a revoke through B is enforced by mcplocal A
        wait_until(lambda: call(c, 0, token).status_code == 200, 30, 0.2)
        c.api(1, "POST", "/mcptokens/t1/revoke")
        wait_until(lambda: call(c, 0, token).status_code == 401, 1.0)
        # table changes flow again (B's kept server list hears A's write)
        wait_until(lambda: _server_names(c, 1) == ["demo"], 30, 0.2)
        c.api(0, "DELETE", "/servers/demo")
        wait_until(lambda: _server_names(c, 1) == [], 1.0)


def test_two_replicas_migrate_one_database_at_once() -> None:
    from mcpd.db import current_revision, make_engine
    from tests.replicas.cluster import BIN, database

    with database() as url:
        procs = [
            subprocess.Popen(
                [str(BIN / "mcpd"), "migrate", "--db", url],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(3)
        ]
        outputs = [p.communicate(timeout=120)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], outputs
        engine = make_engine(url)
        assert current_revision(engine) is not None
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1
        engine.dispose()
