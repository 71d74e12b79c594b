"""An mcpd app over each real database, with a bootstrap admin and helpers to act as others."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from mcpd.app import create_app
from mcpd.settings import Settings

ADMIN = "root@example.com"
PASSWORD = "correct horse battery"


@dataclass
class Api:
    """A TestClient plus the admin's bearer, and shortcuts for common set-up."""

    client: TestClient
    admin: str
    tokens: dict[str, str] = field(default_factory=dict)

    def h(self, bearer: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {bearer or self.admin}"}

    def call(self, method: str, path: str, bearer: str | None = None, **kw: Any) -> Any:
        return self.client.request(method, f"/api/v1{path}", headers=self.h(bearer), **kw)

    def ok(self, method: str, path: str, bearer: str | None = None, **kw: Any) -> Any:
        r = self.call(method, path, bearer, **kw)
        assert r.status_code < 300, (r.status_code, r.text)
        return r.json() if r.content else None

    def user(self, name: str, *bindings: str, password: str = PASSWORD) -> str:
        """Create a user (bound with ``bindings`` by the admin) and return its session bearer."""
        self.ok("POST", "/users", json={"name": name, "password": password})
        if bindings:
            self.ok(
                "POST",
                "/rbac",
                json={
                    "name": f"rb-{len(self.tokens)}-{abs(hash(name)) % 10**6}",
                    "subjects": [f"User:{name}"],
                    "roleBindings": list(bindings),
                },
            )
        return self.login(name, password)

    def state(self) -> str:
        """Everything a restore could carry, secret values included, every rule, and the
        service accounts' tokens (which no backup carries).

        The backup's ``#`` header (it holds the time it was taken) is left out, so two
        states compare equal exactly when the database is the same.
        """
        text = self.call("GET", "/backup?secrets=true").text
        body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
        rbac = self.ok("GET", "/rbac?limit=500")["items"]
        accounts = self.ok("GET", "/serviceaccounts?limit=500")["items"]
        return body + json.dumps([rbac, accounts], sort_keys=True)

    def login(self, name: str, password: str = PASSWORD) -> str:
        r = self.client.post("/api/v1/auth/login", json={"username": name, "password": password})
        assert r.status_code == 200, r.text
        bearer: str = r.json()["token"]
        self.tokens[name] = bearer
        return bearer


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        bootstrap_admin=ADMIN,
        bootstrap_password=PASSWORD,  # type: ignore[arg-type]
        secrets_key=Fernet.generate_key().decode(),  # type: ignore[arg-type]
        secrets_key_file=tmp_path / "unused.key",
    )


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    with TestClient(create_app(settings)) as client:
        r = client.post("/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD})
        assert r.status_code == 200, r.text
        yield Api(client, r.json()["token"])
