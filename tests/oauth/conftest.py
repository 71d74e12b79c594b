"""mcpd (in-process, real HTTP, its public URL set as the OAuth issuer) + a real stdio MCP
server + ``mcplocal serve`` as a real process, which mcpd issues OAuth tokens for."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.mcpd.test_instances import ROOT, Mcpd, make_settings, serve_mcpd, stdio_spec
from tests.mcplocal.conftest import MCPLOCAL, SERVICE_USER, mcplocal_env
from tests.replicas.cluster import process
from tests.servers.launch import free_port

DEV = "dev@example.com"
DEV_BINDINGS = (
    "role:run,resource:servers,name:demo,project:web",
    "role:view,resource:projects,name:web",
    "action:oauth-consent,project:web",
)


@dataclass
class OAuthStack:
    mcpd: Mcpd
    mcplocal: str  # base URL
    dev_session: str
    log: Path


@pytest.fixture
def oauth_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OAuthStack]:
    monkeypatch.chdir(ROOT)
    mcpd_port, local_port = free_port(), free_port()
    local = f"http://127.0.0.1:{local_port}"
    settings = make_settings(
        f"sqlite:///{tmp_path / 'mcpd.db'}",
        tmp_path,
        public_url=f"http://127.0.0.1:{mcpd_port}",
        oauth_resources=f"{local}/mcp",
        oauth_access_token_ttl=60,
    )
    with serve_mcpd(settings, mcpd_port) as m:
        m.server("demo", stdio_spec("demo"))
        m.server("other", stdio_spec("demo"))
        m.ok("POST", "/projects", json={"name": "web", "servers": ["demo", "other"]})
        m.ok("POST", "/projects", json={"name": "ops", "servers": ["other"]})
        service = m.login(
            SERVICE_USER, "action:proxy", "role:run,resource:servers", "role:view,resource:projects"
        )
        dev = m.login(DEV, *DEV_BINDINGS)
        log = tmp_path / "mcplocal.log"
        argv = [str(MCPLOCAL), "serve", "--host", "127.0.0.1", "--port", str(local_port)]
        with process(argv, mcplocal_env(m, service, tmp_path), f"{local}/readyz", log):
            yield OAuthStack(m, local, dev, log)
