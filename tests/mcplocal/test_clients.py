"""Real MCP clients against mcplocal: the MCP Inspector CLI (npm, on Node 22) over HTTP
with an McpToken, and the MCP Python SDK over a real ``mcplocal stdio`` subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
import yaml
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from tests.mcpd.test_instances import ROOT, stdio_spec, text
from tests.mcplocal.conftest import Stack

NODE22 = ROOT / ".tools/node22/node_modules/node/bin/node"
INSPECTOR = ROOT / ".tools/npm/node_modules/@modelcontextprotocol/inspector"
MCPLOCAL = Path(sys.executable).with_name("mcplocal")


def inspector(*args: str) -> subprocess.CompletedProcess[str]:
    launcher = INSPECTOR / "clients/launcher/build/index.js"
    return subprocess.run(
        [str(NODE22), str(launcher), "--cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": os.environ.get("HOME", "/tmp")},
        check=False,
    )


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed: no Inspector")
def test_inspector_cli_against_mcplocal(stack: Stack) -> None:
    assert NODE22.exists() and INSPECTOR.exists(), "run scripts/ensure-node-tools.sh"
    m = stack.mcpd
    m.server("demo", stdio_spec("demo"))
    m.server("other", stdio_spec("demo"))
    m.ok("POST", "/projects", json={"name": "web", "servers": ["demo", "other"]})
    raw = m.ok(
        "POST",
        "/mcptokens",
        json={"name": "ci", "project": "web", "bindings": ["role:run,resource:servers,name:demo"]},
    )["token"]
    url = f"{stack.mcplocal}/mcp"
    auth = f"Authorization: Bearer {raw}"
    listed = inspector(url, "--transport", "http", "--method", "tools/list", "--header", auth)
    assert listed.returncode == 0, listed.stderr + listed.stdout
    names = {t["name"] for t in json.loads(listed.stdout)["tools"]}
    assert "demo__add" in names and not any(n.startswith("other__") for n in names)
    called = inspector(
        url, "--transport", "http", "--method", "tools/call", "--tool-name", "demo__add",
        "--tool-arg", "a=40", "--tool-arg", "b=2", "--header", auth,
    )  # fmt: skip
    assert called.returncode == 0, called.stderr + called.stdout
    assert json.loads(called.stdout)["content"][0]["text"] == "42"
    refused = inspector(url, "--transport", "http", "--method", "tools/list")
    assert refused.returncode != 0  # no token: the 401 challenge


def test_mcplocal_stdio_for_a_logged_in_user(stack: Stack, tmp_path: Path) -> None:
    m = stack.mcpd
    m.server("demo", stdio_spec("demo"))
    m.server("other", stdio_spec("demo"))
    m.ok("POST", "/projects", json={"name": "web", "servers": ["demo", "other"]})
    session = m.login(
        "dev@example.com",
        "role:run,resource:servers,name:demo,project:web",
        "role:view,resource:projects,name:web",
    )
    config = tmp_path / "mcpctl.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "currentContext": "t",
                "contexts": {"t": {"server": m.base, "user": "dev@example.com", "token": session}},
            }
        )
    )
    config.chmod(0o600)
    params = StdioServerParameters(
        command=str(MCPLOCAL),
        args=["stdio", "--project", "web", "--cache-dir", str(tmp_path / "cache")],
        env={
            "MCPCTL_CONFIG": str(config),
            "PATH": os.environ["PATH"],
            "MCPLOCAL_AUDIT_SPOOL_DIR": str(tmp_path / "audit"),
        },
        cwd=str(ROOT),
    )

    async def flow() -> tuple[set[str], str, str]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            names = {t.name for t in (await s.list_tools()).tools}
            added = text(await s.call_tool("demo__add", {"a": 1, "b": 2}))
            try:
                await s.call_tool("other__add", {"a": 1, "b": 2})
                refused = ""
            except MCPError as exc:
                refused = exc.message
            return names, added, refused

    names, added, refused = anyio.run(flow)
    assert "demo__add" in names and not any(n.startswith("other__") for n in names)
    assert added == "3"
    assert refused == "Unknown tool: other__add"


def test_mcplocal_stdio_without_login_says_what_to_do(tmp_path: Path) -> None:
    config = tmp_path / "mcpctl.yaml"
    config.write_text(yaml.safe_dump({"currentContext": "t", "contexts": {"t": {}}}))
    r = subprocess.run(
        [str(MCPLOCAL), "stdio", "--project", "web"],
        env={**os.environ, "MCPCTL_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 1 and "mcpctl login" in r.stderr
