"""mcpd (in-process, real HTTP) + real upstreams + ``mcplocal serve`` as a real process."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.mcpd.test_instances import ROOT, Mcpd, make_settings, serve_mcpd
from tests.replicas.cluster import process
from tests.servers.launch import free_port

MCPLOCAL = Path(sys.executable).with_name("mcplocal")
SERVICE_USER = "mcplocal@svc.example.com"


@dataclass
class Stack:
    mcpd: Mcpd
    mcplocal: str  # base URL
    service_token: str
    log: Path


def mcplocal_env(m: Mcpd, token: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MCPLOCAL_MCPD_URL": m.base,
        "MCPLOCAL_MCPD_TOKEN": token,
        "MCPLOCAL_CACHE_DIR": str(tmp_path / "cache"),
        "MCPLOCAL_AUDIT_SPOOL_DIR": str(tmp_path / "audit"),
        "MCPLOCAL_TOOLS_CACHE_NEGATIVE_TTL": "0.5",
    }


@contextmanager
def open_stack(tmp_path: Path) -> Iterator[Stack]:
    """mcpd + ``mcplocal serve`` (the working directory must be the repository's root)."""
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
        with process(argv, mcplocal_env(m, service, tmp_path), f"{base}/readyz", log):
            yield Stack(m, base, service, log)


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.chdir(ROOT)
    with open_stack(tmp_path) as s:
        yield s
