"""mcpd migrates an empty database and serves health endpoints, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from mcpd.app import create_app
from mcpd.db import current_revision, migrate
from mcpd.policystore import load_stored_rules, write_rules
from mcpd.settings import Settings


def test_migrate_is_idempotent_and_creates_the_policy_table(db_engine: sa.Engine) -> None:
    assert current_revision(db_engine) is None
    migrate(db_engine)
    migrate(db_engine)
    assert current_revision(db_engine) == "0007_policy_version"
    cols = {c["name"] for c in sa.inspect(db_engine).get_columns("casbin_rule")}
    assert cols == {"id", "ptype", "v0", "v1", "v2", "v3", "v4", "v5", "origin"}
    indexes = {i["name"] for i in sa.inspect(db_engine).get_indexes("casbin_rule")}
    assert {"ix_casbin_rule_ptype_v0", "ix_casbin_rule_origin"} <= indexes


def test_app_loads_stored_rules_into_the_shared_authorizer(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'mcpd.db'}"
    settings = Settings(database_url=url, secrets_key_file=tmp_path / "secrets.key")
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = {"status": "ok", "database": "ok", "callSpoolPendingBytes": 0}
        assert client.get("/readyz").json() == ready
        engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
        authorizer = client.app.state.runtime.authorizer  # type: ignore[attr-defined]
        rule = authorizer.parse_binding("role:view,resource:servers").to_rule("User:alice")
        with Session(engine) as s, s.begin():
            write_rules(s, [rule], origin="rbac/t")
    assert (tmp_path / "data" / "mcpd.db").is_file()
    with TestClient(create_app(settings)) as client:
        authorizer = client.app.state.runtime.authorizer  # type: ignore[attr-defined]
        assert authorizer.decide("User:alice", "", "servers", "x", "get").allowed
        assert load_stored_rules(client.app.state.runtime.engine) == [rule]  # type: ignore[attr-defined]


def test_bad_database_url_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="database URL must start with sqlite://"):
        Settings(database_url="mysql://x")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(60)
def test_mcpd_serve_runs_as_a_real_process(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "MCPD_DATABASE_URL": f"sqlite:///{tmp_path / 'mcpd.db'}"}
    mcpd = Path(sys.executable).with_name("mcpd")
    proc = subprocess.Popen(
        [str(mcpd), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    out, _ = proc.communicate(timeout=10)
                    pytest.fail(f"mcpd did not come up: {out.decode()}")
                time.sleep(0.2)
        assert r.status_code == 200
        assert r.json()["database"] == "ok"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert (tmp_path / "mcpd.db").is_file()
    assert b"Application startup complete" in out


def test_mcpd_bootstrap_command(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MCPD_DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}",
        "MCPD_SECRETS_KEY_FILE": str(tmp_path / "k"),
    }
    mcpd = str(Path(sys.executable).with_name("mcpd"))
    run = [mcpd, "bootstrap", "--name", "root", "--password-stdin"]
    short = subprocess.run(
        run, input="short\n", env=env, capture_output=True, text=True, timeout=60
    )
    assert short.returncode == 3
    assert "at least 8 characters" in short.stderr
    ok = subprocess.run(
        run, input="long enough pw\n", env=env, capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok.stderr
    again = subprocess.run(
        run, input="long enough pw\n", env=env, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 1
    assert "already has users" in again.stderr
    settings = Settings(database_url=env["MCPD_DATABASE_URL"], secrets_key_file=tmp_path / "k")
    with TestClient(create_app(settings)) as client:
        r = client.post(
            "/api/v1/auth/login", json={"username": "root", "password": "long enough pw"}
        )
        assert r.status_code == 200
        token = r.json()["token"]
        assert (
            client.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"}).status_code
            == 200
        )
