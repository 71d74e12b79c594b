"""Issue 13 across replicas: a creator disabled through one mcpd replica has its tokens
refused by the other replica and by the mcplocal following it within a second (and
accepted again once enabled); a user's sessions end on every replica within a second of a
disable or a password change; deep JSON is a 400 on mcpd and on mcplocal's fast lane."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.replicas.cluster import Cluster, cluster, wait_until
from tests.replicas.test_replicas import call, setup_project

pytestmark = pytest.mark.postgres
DEV = "dev@example.com"
DEV_PASSWORD = "pw-123456789"
DEEP = b"[" * 100_000 + b"]" * 100_000


def login(c: Cluster, replica: int, password: str = DEV_PASSWORD) -> str:
    r = c.http.post(
        f"{c.mcpd[replica]}/api/v1/auth/login", json={"username": DEV, "password": password}
    )
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


def status(c: Cluster, replica: int, bearer: str, path: str = "/projects/web") -> int:
    r = c.http.get(f"{c.mcpd[replica]}/api/v1{path}", headers={"Authorization": f"Bearer {bearer}"})
    return r.status_code


def test_creator_state_and_sessions_reach_every_replica(tmp_path: Path) -> None:
    with cluster(tmp_path) as c:
        setup_project(c)
        c.api(0, "POST", "/users", json={"name": DEV, "password": DEV_PASSWORD})
        rbac = {"name": "dev", "subjects": [f"User:{DEV}"], "roleBindings": [
            "role:run,resource:servers", "role:view,resource:projects",
            "role:edit,resource:mcptokens",
        ]}  # fmt: skip
        c.api(0, "POST", "/rbac", json=rbac)
        dev = login(c, 0)
        body = {"name": "devs", "project": "web", "bindings": ["role:run,resource:servers"]}
        r = c.http.post(
            f"{c.mcpd[0]}/api/v1/mcptokens", json=body, headers={"Authorization": f"Bearer {dev}"}
        )
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        wait_until(lambda: call(c, 1, token).status_code == 200, 1.0)
        session_b = login(c, 1)
        assert status(c, 1, session_b) == 200
        assert status(c, 1, token, "/auth/me") == 200

        # disabled through A: mcplocal B, mcpd B (token and session) refuse within 1 s
        c.api(0, "PUT", f"/users/{DEV}", json={"disabled": True})
        assert wait_until(lambda: call(c, 1, token).status_code == 401, 1.0) < 1.0
        assert wait_until(lambda: status(c, 1, token, "/auth/me") == 401, 1.0) < 1.0
        assert wait_until(lambda: status(c, 1, session_b) == 401, 1.0) < 1.0
        # enabled again through B: the token works again everywhere (sessions stay ended)
        c.api(1, "PUT", f"/users/{DEV}", json={"disabled": False})
        wait_until(lambda: call(c, 0, token).status_code == 200, 1.0)
        wait_until(lambda: call(c, 1, token).status_code == 200, 1.0)
        assert status(c, 0, session_b) == 401

        # a password change through A ends a session held (and cached) on B within 1 s
        session_b = login(c, 1)
        assert status(c, 1, session_b) == 200
        c.api(0, "PUT", f"/users/{DEV}", json={"password": "another-password-1"})
        assert wait_until(lambda: status(c, 1, session_b) == 401, 1.0) < 1.0

        # deleted through B: gone on A too
        session_a = login(c, 0, "another-password-1")
        assert status(c, 0, session_a) == 200
        c.api(1, "DELETE", f"/users/{DEV}")
        assert wait_until(lambda: status(c, 0, session_a) == 401, 1.0) < 1.0
        wait_until(lambda: call(c, 0, token).status_code == 401, 1.0)

        # 100k-deep JSON: 400 on mcpd and on mcplocal (the fast lane hands it to the SDK)
        admin = setup_token(c)
        headers = {
            "Authorization": f"Bearer {admin}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
            "MCP-Protocol-Version": "2025-06-18",
        }
        r = httpx.post(f"{c.mcplocal[0]}/mcp", content=DEEP, headers=headers, timeout=30)
        assert r.status_code == 400, (r.status_code, r.text[:300])
        headers["Authorization"] = f"Bearer {c.admin}"
        r = httpx.post(
            f"{c.mcpd[1]}/api/v1/servers/demo/mcp", content=DEEP, headers=headers, timeout=30
        )
        assert r.status_code == 400, (r.status_code, r.text[:300])


def setup_token(c: Cluster) -> str:
    body = {"name": "deep", "project": "web", "bindings": ["role:run,resource:servers"]}
    token: str = c.api(0, "POST", "/mcptokens", json=body)["token"]
    wait_until(lambda: call(c, 0, token).status_code == 200, 1.0)
    return token
