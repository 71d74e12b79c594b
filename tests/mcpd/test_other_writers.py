"""`mcpd bootstrap` in another process while mcpd runs: the running mcpd knows the new
admin without a restart (SQLite: it follows the file's data_version; PostgreSQL: bootstrap
notifies the replicas)."""

from __future__ import annotations

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
