"""mcplocal's own identity in mcpd over time (issue 15), with real processes: mcpd with the
shortest session lifetime and ``mcplocal serve`` calling steadily for three lifetimes,
logged in with a password and with a service account's token; a rotation (two tokens
valid, the old one revoked) and what a revoked credential does to mcplocal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from tests.mcpd.test_instances import PASSWORD, Mcpd, make_settings, mcp_session, serve_mcpd, text
from tests.mcplocal.conftest import MCPLOCAL, mcplocal_env
from tests.replicas.cluster import process
from tests.servers.launch import ROOT, free_port, http_server

TTL = 3  # seconds: MCPD_SESSION_TTL_SECONDS's minimum
BINDINGS = ["action:proxy", "role:run,resource:servers", "role:view,resource:projects"]
REFUSED = "mcpd refused mcplocal's credential (revoked?)"


@pytest.fixture
def mcpd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Mcpd, str]]:
    """mcpd (sessions live TTL seconds) with project web of one http server, and an
    McpToken of web for the MCP client."""
    monkeypatch.chdir(ROOT)
    settings = make_settings(f"sqlite:///{tmp_path / 'mcpd.db'}", tmp_path, session_ttl_seconds=TTL)
    with serve_mcpd(settings) as m:
        # within the admin's first session: the project, the client's token (a user's), and
        # an admin service account for the rest of the test (the session would lapse)
        m.ok("POST", "/projects", json={"name": "web"})
        body = {"name": "client", "project": "web", "bindings": ["role:run,resource:servers"]}
        client = m.ok("POST", "/mcptokens", json=body)["token"]
        admin = m.ok("POST", "/serviceaccounts", json={"name": "admin"})["token"]
        body = {"name": "admin", "subjects": ["ServiceAccount:admin"]}
        m.ok("POST", "/rbac", json={**body, "roleBindings": ["role:admin,resource:*"]})
        m.admin = admin
        with http_server("demo") as (port, _):
            url = f"http://127.0.0.1:{port}/mcp"
            m.server("alpha", {"transport": "http", "http": {"url": url}})
            m.ok("PUT", "/projects/web", json={"servers": ["alpha"]})
            yield m, client


@contextmanager
def mcplocal(m: Mcpd, tmp_path: Path, name: str, **env: str) -> Iterator[tuple[str, Path]]:
    port = free_port()
    base, log = f"http://127.0.0.1:{port}", tmp_path / f"{name}.log"
    environ = {**mcplocal_env(m, "", tmp_path / name), **env}
    if "MCPLOCAL_MCPD_TOKEN" not in env:
        del environ["MCPLOCAL_MCPD_TOKEN"]
    argv = [str(MCPLOCAL), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with process(argv, environ, f"{base}/readyz", log):
        yield base, log


def service_account(m: Mcpd, name: str = "mcplocal") -> str:
    created = m.ok("POST", "/serviceaccounts", json={"name": name})
    body = {"name": name, "subjects": [f"ServiceAccount:{name}"], "roleBindings": BINDINGS}
    m.ok("POST", "/rbac", json=body)
    raw: str = created["token"]
    return raw


def steady_calls(url: str, token: str, seconds: float) -> list[str]:
    """``alpha__add`` every 50 ms for ``seconds``, on one MCP session and (each second) on
    a new one: every answer, an error's text where a call failed."""

    async def main() -> list[str]:
        answers: list[str] = []
        deadline = time.monotonic() + seconds
        async with mcp_session(url, token) as s:
            while not answers or time.monotonic() < deadline:
                result = await s.call_tool("alpha__add", {"a": len(answers), "b": 1})
                answers.append(("ERROR " if result.is_error else "") + text(result))
                if len(answers) % 20 == 0:
                    async with mcp_session(url, token) as fresh:
                        result = await fresh.call_tool("alpha__add", {"a": 1, "b": 1})
                        answers.append(("ERROR " if result.is_error else "") + text(result))
                await anyio.sleep(0.05)
        return answers

    return anyio.run(main)


def audited_calls(m: Mcpd) -> int:
    return len(m.ok("GET", "/auditevents", params={"action": "call", "limit": 500})["items"])


def check_lasting(m: Mcpd, base: str, token: str, log: Path) -> None:
    answers = steady_calls(f"{base}/mcp", token, 3 * TTL)
    failed = [a for a in answers if a.startswith("ERROR")]
    said = [line for line in log.read_text().splitlines() if "HTTP Request" not in line]
    assert not failed, (failed[:3], said[-40:])
    assert len(answers) > 3 * TTL  # steady: several a second
    assert httpx.get(f"{base}/readyz").status_code == 200
    deadline = time.monotonic() + 10  # and every call reached mcpd's audit log
    while audited_calls(m) < len(answers):
        assert time.monotonic() < deadline, (audited_calls(m), len(answers))
        time.sleep(0.2)


def test_a_password_login_outlives_its_sessions(mcpd: tuple[Mcpd, str], tmp_path: Path) -> None:
    m, token = mcpd
    m.login("mcplocal@svc.example.com", *BINDINGS)
    env = {"MCPLOCAL_MCPD_USER": "mcplocal@svc.example.com", "MCPLOCAL_MCPD_PASSWORD": PASSWORD}
    with mcplocal(m, tmp_path, "login", **env) as (base, log):
        assert httpx.get(f"{base}/readyz").json()["credential"] == "login"
        check_lasting(m, base, token, log)
    logins = m.ok(
        "GET", "/auditevents", params={"action": "login", "subject": "mcplocal@svc.example.com"}
    )["items"]
    assert len(logins) >= 3  # renewed while it ran, before each session expired


def test_a_service_account_token_does_not_lapse(mcpd: tuple[Mcpd, str], tmp_path: Path) -> None:
    m, token = mcpd
    raw = service_account(m)
    with mcplocal(m, tmp_path, "sa", MCPLOCAL_MCPD_TOKEN=raw) as (base, log):
        assert httpx.get(f"{base}/readyz").json()["credential"] == "serviceaccount"
        check_lasting(m, base, token, log)
    used = m.ok("GET", "/serviceaccounts/mcplocal")["tokens"][0]["lastUsedAt"]
    assert used is not None


def test_rotation_then_the_revoked_one_stops_cleanly(
    mcpd: tuple[Mcpd, str], tmp_path: Path
) -> None:
    m, token = mcpd
    old = service_account(m)
    minted = m.ok("POST", "/serviceaccounts/mcplocal/tokens", json={})
    new, old_prefix = minted["token"], minted["tokens"][0]["prefix"]
    with (
        mcplocal(m, tmp_path, "old", MCPLOCAL_MCPD_TOKEN=old) as (on_old, old_log),
        mcplocal(m, tmp_path, "new", MCPLOCAL_MCPD_TOKEN=new) as (on_new, _),
    ):
        for base in (on_old, on_new):  # two tokens valid at once
            assert steady_calls(f"{base}/mcp", token, 0.3)[0] == "1"
        m.ok("POST", f"/serviceaccounts/mcplocal/tokens/{old_prefix}/revoke")

        deadline = time.monotonic() + 15  # (its stream ends; it connects again: refused)
        while "refused" not in (r := httpx.get(f"{on_old}/readyz")).json():
            assert time.monotonic() < deadline, f"mcplocal on the revoked token: {r.text}"
            time.sleep(0.2)
        assert r.status_code == 503
        assert REFUSED in r.json()["refused"]
        # a call gets the reason, not a silent failure
        call = httpx.post(
            f"{on_old}/mcp",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )
        assert call.status_code == 503 and REFUSED in call.json()["error"]
        assert REFUSED in old_log.read_text()
        # bounded: it stopped asking (no more refusals logged once it gave up)
        time.sleep(1.5)
        tries = old_log.read_text().count(REFUSED)
        time.sleep(1.5)
        assert old_log.read_text().count(REFUSED) == tries <= 4

        # the one on the new token carries on
        answers = steady_calls(f"{on_new}/mcp", token, 1.0)
        assert answers and not [a for a in answers if a.startswith("ERROR")]
        assert httpx.get(f"{on_new}/readyz").status_code == 200
