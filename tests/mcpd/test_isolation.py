"""A stdio server (an admin's: defining it needs no attack) tries to read mcpd's secrets.

Real ``mcpd serve`` processes on SQLite, and a real child: tests/servers/thief.py, whose tool
``read`` returns what it got from a path. Under bubblewrap it gets nothing of mcpd's key file,
database, logs or ``/proc/<mcpd>/environ``; without a sandbox, ``/proc/<mcpd>/environ`` is
still closed (mcpd is non-dumpable) to a process of its user without ``CAP_SYS_PTRACE``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.mcpd.test_e2e_http import ADMIN, PASSWORD, mcpd_serve
from tests.mcpd.test_instances import Mcpd, mcp_session, mcp_url, run, text
from upstream.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
THIEF = ROOT / "tests" / "servers" / "thief.py"


def ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(") ", 1)[1].split()[1])


@contextmanager
def mcpd_with(
    tmp_path: Path, env: dict[str, str], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[Mcpd, Path]]:
    """An ``mcpd serve`` whose database, key file and logs are in ``tmp_path/data``; the
    sandbox may read all of ``tmp_path`` (a bind), so only hiding keeps ``data`` from it."""
    data = tmp_path / "data"
    env = {
        "MCPD_SECRETS_KEY_FILE": str(data / "secrets.key"),
        "MCPD_LOG_DIR": str(data / "logs"),
        "MCPD_STDIO_SANDBOX_BINDS": json.dumps([str(tmp_path)]),
        **env,
    }
    with mcpd_serve(f"sqlite:///{data / 'mcpd.db'}", tmp_path, env=env, prefix=prefix) as base:
        r = httpx.post(f"{base}/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD})
        assert r.status_code == 200, r.text
        yield Mcpd(base, r.json()["token"], None), data


def steal(m: Mcpd, *paths: str) -> list[str]:
    async def flow() -> list[str]:
        async with mcp_session(mcp_url(m, "thief"), m.admin) as s:
            return [text(await s.call_tool("read", {"path": p})) for p in paths]

    result: list[str] = run(flow)
    return result


def test_the_sandbox_hides_mcpds_files_and_process(tmp_path: Path) -> None:
    probe = Sandbox(mode="bwrap")
    if not probe.probe():
        pytest.skip(f"the bubblewrap part only: {probe.description}")
    (tmp_path / "visible.txt").write_text("bound on purpose")
    with mcpd_with(tmp_path, {"MCPD_STDIO_SANDBOX": "bwrap"}) as (m, data):
        command = {"command": sys.executable, "args": [str(THIEF)]}
        m.ok("POST", "/servers", json={"name": "thief", "transport": "stdio", "stdio": command})
        m.ok("POST", "/secrets", json={"name": "db", "data": {"password": "hunter2-canary"}})
        assert m.call("POST", "/servers/thief/mcp", json={}).status_code < 500
        inst = m.wait_instance("thief", lambda i: i["status"] == "RUNNING")
        mcpd_pid = ppid(inst["pid"])
        key, db, log = data / "secrets.key", data / "mcpd.db", data / "logs" / "thief.log"
        assert key.exists() and db.exists() and log.exists()
        got = steal(
            m,
            str(tmp_path / "visible.txt"),
            str(key),
            str(db),
            str(log),
            f"/proc/{mcpd_pid}/environ",
            "/proc/self/environ",
        )
        assert got[0] == "ok: bound on purpose"  # the bind works: what follows is hidden
        for path, result in zip(["key", "db", "log", "environ"], got[1:5], strict=True):
            assert result.startswith("error: "), (path, result)
        assert "MCPD_" not in got[5]
        secret_key = key.read_text().strip()
        assert not any(secret_key in r for r in got)
        assert "in bubblewrap" in m.logs("thief")


def test_without_a_sandbox_mcpds_environment_stays_closed(tmp_path: Path) -> None:
    """MCPD_STDIO_SANDBOX=none: the child can read files mcpd's user can, but not mcpd's
    environment (non-dumpable), and the key given in it is in no environment at all."""
    secret_key = Fernet.generate_key().decode()
    env = {"MCPD_STDIO_SANDBOX": "none", "MCPD_SECRETS_KEY": secret_key}
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:  # root's CAP_SYS_PTRACE opens any process: run mcpd as a user would
        setpriv = shutil.which("setpriv")
        assert setpriv, "util-linux's setpriv"
        prefix = (setpriv, "--bounding-set=-all", "--inh-caps=-all")
    with mcpd_with(tmp_path, env, prefix) as (m, _):
        command = {"command": sys.executable, "args": [str(THIEF)]}
        m.ok("POST", "/servers", json={"name": "thief", "transport": "stdio", "stdio": command})
        assert m.call("POST", "/servers/thief/mcp", json={}).status_code < 500
        inst = m.wait_instance("thief", lambda i: i["status"] == "RUNNING")
        mcpd_pid = ppid(inst["pid"])
        cmdline, environ, own = steal(
            m, f"/proc/{mcpd_pid}/cmdline", f"/proc/{mcpd_pid}/environ", "/proc/self/environ"
        )
        assert cmdline.startswith("ok: ") and "serve" in cmdline  # the right process
        assert environ.startswith("error: PermissionError"), environ
        assert secret_key not in own and "MCPD_" not in own
        # not even root (this test) finds the key where the kernel shows mcpd's environment
        with open(f"/proc/{mcpd_pid}/environ", "rb") as f:
            assert secret_key.encode() not in f.read()


@pytest.mark.skipif(os.geteuid() != 0, reason="MCPD_STDIO_USER needs mcpd to run as root")
@pytest.mark.parametrize("sandbox", ["none", "auto"])
def test_a_dedicated_user_runs_the_children(tmp_path: Path, sandbox: str) -> None:
    """mcpd as root, MCPD_STDIO_USER=nobody: the child is nobody, and mcpd's key file
    (0600, root's) and its environment are closed to it, with or without the sandbox."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:  # pragma: no cover - Debian has one
        pytest.skip("no system python3 that user `nobody` can run")
    tmp_path.chmod(0o755)  # the thief's view of tmp_path/visible.txt is not the point here
    env = {"MCPD_STDIO_SANDBOX": sandbox, "MCPD_STDIO_USER": "nobody"}
    with mcpd_with(tmp_path, env) as (m, data):
        command = {"command": python, "args": [str(THIEF)]}
        m.ok("POST", "/servers", json={"name": "thief", "transport": "stdio", "stdio": command})
        assert m.call("POST", "/servers/thief/mcp", json={}).status_code < 500
        inst = m.wait_instance("thief", lambda i: i["status"] == "RUNNING")
        mcpd_pid = ppid(inst["pid"])

        async def whoami() -> str:
            async with mcp_session(mcp_url(m, "thief"), m.admin) as s:
                return text(await s.call_tool("whoami", {}))

        assert json.loads(run(whoami))["uid"] == 65534
        key, environ = steal(m, str(data / "secrets.key"), f"/proc/{mcpd_pid}/environ")
        assert key.startswith("error: "), key
        assert environ.startswith("error: "), environ
        assert "as user `nobody`" in m.logs("thief")
