"""mcpd (in-process, real HTTP) + real upstreams + ``mcplocal serve`` as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.mcpd.test_e2e_http import free_port
from tests.mcpd.test_instances import ROOT, Mcpd, make_settings, serve_mcpd

MCPLOCAL = Path(sys.executable).with_name("mcplocal")
SERVICE_USER = "mcplocal@svc.example.com"


@dataclass
class Stack:
    mcpd: Mcpd
    mcplocal: str  # base URL
    service_token: str
    log: Path


@contextmanager
def run_process(
    argv: list[str], env: dict[str, str], ready: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, f"{argv[0]} exited: {log.read_text()[-3000:]}"
                with suppress(httpx.TransportError):
                    if httpx.get(ready, timeout=1).status_code == 200:
                        break
                assert time.monotonic() < deadline, f"not ready: {log.read_text()[-3000:]}"
                time.sleep(0.05)
            yield proc
        finally:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def mcplocal_env(m: Mcpd, token: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MCPLOCAL_MCPD_URL": m.base,
        "MCPLOCAL_MCPD_TOKEN": token,
        "MCPLOCAL_CACHE_DIR": str(tmp_path / "cache"),
        "MCPLOCAL_TOOLS_CACHE_NEGATIVE_TTL": "0.5",
    }


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.chdir(ROOT)
    settings = make_settings(
        f"sqlite:///{tmp_path / 'mcpd.db'}",
        tmp_path,
        tools_cache_negative_ttl=0.5,
        instance_retry_failed_seconds=1.0,
    )
    with serve_mcpd(settings) as m:
        service = m.login(
            SERVICE_USER, "action:proxy", "role:run,resource:servers", "role:view,resource:projects"
        )
        port = free_port()
        log = tmp_path / "mcplocal.log"
        argv = [str(MCPLOCAL), "serve", "--host", "127.0.0.1", "--port", str(port)]
        base = f"http://127.0.0.1:{port}"
        with run_process(argv, mcplocal_env(m, service, tmp_path), f"{base}/readyz", log):
            yield Stack(m, base, service, log)
