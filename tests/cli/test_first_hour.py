"""What a newcomer meets in the first hour (issue 16): clear errors and exit codes, apply
all or nothing, delete -f, filters checked, readable tables, LAST USED through a proxy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from tests.cli.conftest import ADMIN, PASSWORD, ROOT, _free_port
from tests.cli.test_cli_flows import login, mcpctl, uniq
from tests.servers.launch import stop, wait_ready

MCPCTL = str(Path(sys.executable).with_name("mcpctl"))


def _token(cli_env: dict[str, str]) -> str:
    token: str = yaml.safe_load(Path(cli_env["MCPCTL_CONFIG"]).read_text())["contexts"]["default"][
        "token"
    ]
    return token


def test_usage_errors_exit_3(cli_env: dict[str, str]) -> None:
    for args in (["get"], ["get", "servers", "--bogus"], ["create", "server", "x", "--nope"]):
        assert mcpctl(*args)[0] == 3, args
    done = subprocess.run([MCPCTL, "get"], capture_output=True, text=True, env=cli_env)
    assert done.returncode == 3


def test_filters_are_checked_on_both_sides(cli_env: dict[str, str], mcpd_url: str) -> None:
    login(cli_env)
    code, out, err = mcpctl("get", "auditevents", "--filter", "outcom=deny")
    assert (code, out) == (3, "")
    assert "`outcom` is unknown for auditevents; valid keys: subject, kind, name" in err
    r = httpx.get(
        f"{mcpd_url}/api/v1/auditevents",
        params={"outcom": "deny"},
        headers={"Authorization": f"Bearer {_token(cli_env)}"},
    )
    assert r.status_code == 422
    assert r.json()["detail"].startswith("unknown filter(s) `outcom`; valid filters: subject")
    assert mcpctl("get", "servers", "--filter", "a=b")[0] == 3


def test_empty_lists_say_so(cli_env: dict[str, str]) -> None:
    login(cli_env)
    proj = uniq("empty")
    assert mcpctl("create", "project", proj)[0] == 0
    assert mcpctl("get", "servers", "-p", proj) == (0, "", "No resources found.\n")
    assert mcpctl("get", "servers", "-p", proj, "-o", "json")[1].strip() == "[]"


def test_apply_is_all_or_nothing_and_names_the_document(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    login(cli_env)
    s = uuid.uuid4().hex[:8]
    f = tmp_path / "m.yaml"
    f.write_text(
        f"kind: Server\nmetadata: {{name: ok-{s}}}\n"
        "spec: {transport: stdio, stdio: {command: mcp-server-time}}\n---\n"
        f"kind: Project\nmetadata: {{name: p-{s}}}\nspec: {{servers: [does-not-exist]}}\n"
    )
    code, _, err = mcpctl("apply", "-f", str(f))
    assert code == 3
    assert f"document 2 (Project `p-{s}`)" in err and "does-not-exist" in err
    assert mcpctl("get", "server", f"ok-{s}")[0] == 1  # document 1 was not applied either
    f.write_text(
        f"kind: Server\nmetadata: {{name: ok-{s}}}\n"
        "spec: {transport: stdio, stdio: {comand: mcp-server-time}}\n"
    )
    code, _, err = mcpctl("apply", "-f", str(f))
    assert code == 3
    assert f"document 1 (Server `ok-{s}`): " in err and "spec.stdio.comand: Extra inputs" in err
    assert "Value error" not in err


def test_apply_dry_run_server_then_delete_f(cli_env: dict[str, str], tmp_path: Path) -> None:
    login(cli_env)
    s = uuid.uuid4().hex[:8]
    f = tmp_path / "m.yaml"
    f.write_text(
        f"kind: Group\nmetadata: {{name: g-{s}}}\nspec: {{members: []}}\n---\n"
        f"kind: Server\nmetadata: {{name: srv-{s}}}\n"
        "spec: {transport: stdio, stdio: {command: mcp-server-time}}\n"
    )
    code, out, err = mcpctl("apply", "-f", str(f), "--dry-run=server")
    assert code == 0, err
    assert out.splitlines() == [
        f"group/g-{s} created (dry run)",
        f"server/srv-{s} created (dry run)",
    ]
    assert mcpctl("apply", "-f", str(f), "--dry-run=client")[0] == 3
    assert mcpctl("apply", "-f", str(f))[0] == 0
    code, out, err = mcpctl("delete", "-f", str(f))
    assert code == 0, err
    assert out.splitlines() == [f"server/srv-{s} deleted", f"group/g-{s} deleted"]
    code, _, err = mcpctl("delete", "-f", str(f))
    assert code == 1
    assert f"server/srv-{s} not found" in err


def test_tables_read_well(cli_env: dict[str, str]) -> None:
    login(cli_env)
    user, rb = uniq("u"), uniq("rb")
    assert mcpctl("create", "user", user)[0] == 0
    _, out, _ = mcpctl("get", "user", user)
    assert out.splitlines()[1].split()[-1] == "false"
    bindings = ["role:view,resource:servers", "action:logs"]
    args = ["create", "rbac", rb, "--subject", f"User:{user}"]
    for b in bindings:
        args += ["--roleBindings", b]
    assert mcpctl(*args)[0] == 0
    _, out, _ = mcpctl("get", "rbac", rb)
    assert "role:view,resource:servers; action:logs" in out
    proj = uniq("d")
    assert mcpctl("create", "project", proj, "--description", "two servers")[0] == 0
    _, out, _ = mcpctl("describe", "project", proj)
    assert re.search(r"^description: +two servers$", out, re.M), out  # label, space, value


def test_missing_stdio_command_is_named_in_the_last_error(
    cli_env: dict[str, str], mcpd_url: str
) -> None:
    login(cli_env)
    srv = uniq("missing")
    assert mcpctl("create", "server", srv, "--command", "no-such-mcp-server")[0] == 0
    headers = {
        "Authorization": f"Bearer {_token(cli_env)}",
        "Accept": "application/json, text/event-stream",
    }
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    httpx.post(f"{mcpd_url}/api/v1/servers/{srv}/mcp", json=body, headers=headers, timeout=30)
    deadline = time.monotonic() + 20
    while True:
        _, out, _ = mcpctl("get", "instance", srv, "-o", "json")
        if "not found on PATH" in out or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert "command `no-such-mcp-server` not found on PATH" in out
    assert f"{Path(sys.prefix) / 'bin'}" in out


def test_token_used_through_a_proxy_gets_last_used(cli_env: dict[str, str], mcpd_url: str) -> None:
    login(cli_env)
    proj = uniq("lu")
    assert mcpctl("create", "project", proj)[0] == 0
    code, raw, err = mcpctl("create", "mcptoken", "t", "--project", proj)
    assert code == 0, err
    _, out, _ = mcpctl("get", "mcptokens", "-p", proj, "-o", "json")
    assert yaml.safe_load(out)[0]["lastUsedAt"] is None
    import hashlib

    sha = hashlib.sha256(raw.strip().encode()).hexdigest()
    event = {"tokenSha": sha, "tokenName": "t", "server": "s", "tool": "x", "project": proj,
             "outcome": "allow", "durationMs": 1.0}  # fmt: skip
    r = httpx.post(
        f"{mcpd_url}/api/v1/auditevents",
        json={"events": [event]},
        headers={"Authorization": f"Bearer {_token(cli_env)}"},
    )
    assert r.status_code == 202, r.text
    _, out, _ = mcpctl("get", "mcptokens", "-p", proj, "-o", "json")
    assert yaml.safe_load(out)[0]["lastUsedAt"] is not None


@pytest.fixture
def strict_mcpd(tmp_path: Path) -> str:
    """A mcpd of its own that allows two failed logins a minute."""
    port = _free_port()
    env = {
        **os.environ,
        "MCPD_DATABASE_URL": f"sqlite:///{tmp_path / 'mcpd.db'}",
        "MCPD_SECRETS_KEY_FILE": str(tmp_path / "secrets.key"),
        "MCPD_BOOTSTRAP_ADMIN": ADMIN,
        "MCPD_BOOTSTRAP_PASSWORD": PASSWORD,
        "MCPD_LOGIN_ATTEMPTS_PER_MINUTE": "2",
        "MCPD_LOG_DIR": str(tmp_path / "logs"),
    }
    exe = str(Path(sys.executable).with_name("mcpd"))
    log = (tmp_path / "mcpd.log").open("wb")
    proc = subprocess.Popen(
        [exe, "serve", "--port", str(port)], env=env, stdout=log, stderr=log, cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/readyz", proc, tmp_path / "mcpd.log")
    yield url  # type: ignore[misc]
    stop(proc)
    log.close()


def test_lock_out_is_a_message_not_a_traceback(strict_mcpd: str, tmp_path: Path) -> None:
    env = {**os.environ, "MCPCTL_CONFIG": str(tmp_path / "c.yaml"), "MCPCTL_SERVER": strict_mcpd}

    def login_with(password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MCPCTL, "login", "-u", ADMIN, "--password-stdin"],
            input=password + "\n", capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip

    for _ in range(3):
        login_with("wrong password")
    for password in ("wrong password", PASSWORD):  # locked out, even with the right one
        done = login_with(password)
        assert done.returncode == 1
        assert done.stderr.startswith("error: too many failed logins"), done.stderr
        assert "Traceback" not in done.stderr
