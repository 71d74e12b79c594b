"""`mcpd bootstrap` in another process while mcpd runs: the running mcpd knows the new
admin without a restart (SQLite: it follows the file's data_version; PostgreSQL: bootstrap
notifies the replicas)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from mcpd.app import create_app
from mcpd.settings import Settings

ADMIN, PASSWORD = "first@example.com", "a long enough password"


def test_bootstrap_by_another_process_is_known_without_a_restart(
    db_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=db_url,
        secrets_key=Fernet.generate_key().decode(),  # type: ignore[arg-type]
        secrets_key_file=tmp_path / "unused.key",
    )
    with TestClient(create_app(settings)) as client:
        done = subprocess.run(
            [str(Path(sys.executable).with_name("mcpd")), "bootstrap", "--name", ADMIN,
             "--password-stdin", "--db", db_url],
            input=PASSWORD + "\n", capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        r = client.post("/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD})
        assert r.status_code == 200, r.text
        bearer = {"Authorization": f"Bearer {r.json()['token']}"}
        body = {"name": "time", "transport": "stdio", "stdio": {"command": "mcp-server-time"}}
        deadline = time.monotonic() + 5  # SQLite is polled once a second
        while True:
            r = client.post("/api/v1/servers", json=body, headers=bearer)
            if r.status_code != 403 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert r.status_code == 201, r.text
        r = client.get("/api/v1/users", headers=bearer)  # read caches moved on too
        assert [u["name"] for u in r.json()["items"]] == [ADMIN]


def test_sqlite_policy_is_read_again_only_when_what_it_is_built_from_changed(
    tmp_path: Path,
) -> None:
    """Audit records and tokens' last use move SQLite's data_version on every call: the
    watcher must not re-read the whole policy for them (at 100k lines, 0.5 s of CPU a
    second under steady calls); a rule, a revoked token or a disabled user written by
    another process still reaches the enforcer (migration 0007's triggers)."""
    db = tmp_path / "mcpd.db"
    settings = Settings(
        database_url=f"sqlite:///{db}",
        secrets_key=Fernet.generate_key().decode(),  # type: ignore[arg-type]
        secrets_key_file=tmp_path / "unused.key",
        bootstrap_admin=ADMIN,
        bootstrap_password=PASSWORD,  # type: ignore[arg-type]
    )
    with TestClient(create_app(settings)) as client:
        watcher = client.app.state.replicator  # type: ignore[attr-defined]
        rt = client.app.state.runtime  # type: ignore[attr-defined]
        other = sqlite3.connect(db, isolation_level=None)
        counter = lambda: other.execute("SELECT n FROM policy_version").fetchone()[0]  # noqa: E731
        before, reads = counter(), watcher.reads
        other.execute(
            "INSERT INTO audit_events (time, subject, action, kind, name, project, outcome,"
            " request_id, detail) VALUES ('2026-12-01 00:00:00', 'x', 'call', 'tools', 'a__b',"
            " '', 'allow', '', '{}')"
        )
        other.execute("UPDATE users SET display_name = 'Ada' WHERE name = ?", (ADMIN,))
        time.sleep(2.5)  # two looks of the watcher (once a second)
        assert counter() == before
        assert watcher.reads == reads

        request = ("User:bob", "", "servers", "web", "get")
        assert not rt.authorizer.decide(*request).allowed
        other.execute(
            "INSERT INTO casbin_rule (ptype, v0, v1, v2, v3, v4, v5, origin)"
            " VALUES ('p', 'User:bob', '*', 'servers', '*', 'role:view', 'allow', 'db:x')"
        )
        assert counter() == before + 1
        deadline = time.monotonic() + 5
        while not rt.authorizer.decide(*request).allowed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rt.authorizer.decide(*request).allowed
        assert watcher.reads > reads
        other.execute("UPDATE users SET disabled = 1 WHERE name = ?", (ADMIN,))
        assert counter() == before + 2
        other.close()
