"""A real mcpd process on a loopback port, and an isolated mcpctl config per test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.launch import stop, wait_ready

ADMIN = "admin@example.com"
PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def mcpd_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("mcpd")
    port = _free_port()
    env = {
        **os.environ,
        "MCPD_DATABASE_URL": f"sqlite:///{data / 'mcpd.db'}",
        "MCPD_SECRETS_KEY_FILE": str(data / "secrets.key"),
        "MCPD_BOOTSTRAP_ADMIN": ADMIN,
        "MCPD_BOOTSTRAP_PASSWORD": PASSWORD,
        "MCPD_LOGIN_ATTEMPTS_PER_MINUTE": "1000",
        "MCPD_LOG_DIR": str(data / "logs"),
    }
    exe = str(Path(sys.executable).with_name("mcpd"))
    log = (data / "mcpd.log").open("wb")
    # cwd: the test servers run as `python -m tests.servers...`, in mcpd's directory
    proc = subprocess.Popen(
        [exe, "serve", "--port", str(port)], env=env, stdout=log, stderr=log, cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/readyz", proc, data / "mcpd.log")
        yield url
    finally:
        stop(proc)
        log.close()


@pytest.fixture
def cli_env(tmp_path: Path, mcpd_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment of one CLI user: its own config file, pointed at the test mcpd."""
    cfg = tmp_path / "mcpctl" / "config.yaml"
    monkeypatch.setenv("MCPCTL_CONFIG", str(cfg))
    monkeypatch.setenv("MCPCTL_SERVER", mcpd_url)
    return {**os.environ, "MCPCTL_CONFIG": str(cfg), "MCPCTL_SERVER": mcpd_url}
