"""End to end in a real browser: a client that knows only mcplocal's URL gets project-scoped,
revocable access through mcpd's OAuth flow.

The TypeScript SDK's OAuth client provider (npm, on Node 22) follows mcplocal's 401 to its
RFC 9728 metadata, mcpd's RFC 8414 metadata, registers (RFC 7591), and sends headless
Chromium (Debian's, driven by playwright-core) to mcpd's login and consent pages; then it
lists and calls tools. The user revokes the grant with the real ``mcpctl`` and the next call
gets 401. The browser's screenshots of the two pages go to the test's directory, and to
docs/ (the README shows them) with MCPCTL_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from tests.mcpd.test_instances import ROOT
from tests.oauth.conftest import DEV, OAuthStack

NODE22 = ROOT / ".tools/node22/node_modules/node/bin/node"
NPM = ROOT / ".tools/npm/node_modules"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
MCPCTL = Path(sys.executable).with_name("mcpctl")
DOCS = ROOT / "docs"
PASSWORD = "correct horse battery"

needs_tools = pytest.mark.skipif(
    not (NODE22.exists() and (NPM / "playwright-core").exists() and Path(CHROMIUM).exists()),
    reason="needs scripts/ensure-node-tools.sh (node, playwright-core, the MCP SDK) and "
    "chromium (scripts/ensure-services.sh)",
)


def _line(out: IO[str], want: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = out.readline()
        if not line:
            raise AssertionError(f"the client exited before `{want}`")
        msg: dict[str, Any] = json.loads(line)
        if msg["step"] == "failed":
            raise AssertionError(f"{msg['error']}\npage: {msg.get('page')}")
        if msg["step"] == want:
            return msg
    raise AssertionError(f"no `{want}` within {timeout} s")


def mcpctl(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MCPCTL), *args],
        env={**os.environ, "MCPCTL_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_tools
def test_browser_flow_then_revoke_with_mcpctl(oauth_stack: OAuthStack, tmp_path: Path) -> None:
    s = oauth_stack
    work = tmp_path / "node"
    work.mkdir()
    (work / "node_modules").symlink_to(NPM)  # ESM resolves packages beside the script
    shutil.copy(ROOT / "tests/oauth/browser_flow.mjs", work / "flow.mjs")
    shots = DOCS if os.environ.get("MCPCTL_UPDATE_SCREENSHOTS") == "1" else tmp_path
    cfg = {
        "url": f"{s.mcplocal}/mcp",  # all the client is told
        "user": DEV,
        "password": PASSWORD,
        "project": "web",
        "tool": "demo__add",
        "args": {"a": 40, "b": 2},
        "shots": str(shots),
        "chromium": CHROMIUM,
    }
    errors = tmp_path / "client.err"
    with errors.open("w") as err_out:
        client = subprocess.Popen(
            [str(NODE22), str(work / "flow.mjs"), json.dumps(cfg)],
            cwd=work,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err_out,
            text=True,
            env={**os.environ, "HOME": str(tmp_path)},
        )
    assert client.stdout is not None and client.stdin is not None
    try:
        start = _line(client.stdout, "authorize")
        assert start["url"] == f"{s.mcpd.base}/oauth/authorize"  # found from mcplocal's 401
        assert start["resource"] == f"{s.mcplocal}/mcp" and start["method"] == "S256"
        consent = _line(client.stdout, "consent")
        # exactly the user's own bindings in that project (no OAuth operations)
        assert sorted(consent["offered"]) == [
            "role:run,resource:servers,name:demo,project:web",
            "role:view,resource:projects,name:web,project:web",
        ]
        back = _line(client.stdout, "redirected")
        assert back["stateOk"] and back["iss"] == s.mcpd.base and back["error"] is None
        listed = _line(client.stdout, "listed")
        assert "demo__add" in listed["tools"]
        assert not any(t.startswith("other__") for t in listed["tools"])  # not consented
        called = _line(client.stdout, "called")
        assert called["text"] == "42" and not called["isError"]
        assert called["tokenPrefix"] == "mcpctl_oat_"

        # the user sees and revokes the grant with mcpctl (a real process)
        config = tmp_path / "mcpctl.yaml"
        context = {"server": s.mcpd.base, "user": DEV, "token": s.dev_session}
        config.write_text(yaml.safe_dump({"currentContext": "t", "contexts": {"t": context}}))
        config.chmod(0o600)
        got = mcpctl(config, "get", "oauthgrants", "-o", "json")
        assert got.returncode == 0, got.stderr
        grants = json.loads(got.stdout)
        grants = grants if isinstance(grants, list) else [grants]
        assert len(grants) == 1 and grants[0]["project"] == "web"
        assert grants[0]["client"] == "browser-flow test client"
        assert grants[0]["resource"] == f"{s.mcplocal}/mcp" and grants[0]["revokedAt"] is None
        tokens = s.mcpd.ok("GET", "/mcptokens", params={"project": "web"})["items"]
        assert [t["name"] for t in tokens] == [grants[0]["name"]]  # an McpToken like any other
        revoked = mcpctl(config, "delete", "oauthgrant", grants[0]["name"])
        assert revoked.returncode == 0, revoked.stderr
        assert "revoked" in revoked.stdout
        client.stdin.write("revoked\n")
        client.stdin.flush()
        after = _line(client.stdout, "after-revoke")
    finally:
        client.stdin.close()
        try:
            client.wait(timeout=30)
        except subprocess.TimeoutExpired:
            client.kill()
            client.wait()
        client.stdout.close()
    err = errors.read_text()
    assert not after["ok"] and after["unauthorized"], (after, err)
    assert after["statuses"][0] == 401  # the next call, at once
    assert after["ms"] < 1000, after
    assert after["rawStatus"] == 401 and "resource_metadata=" in after["rawChallenge"]
    assert (shots / "oauth-login.png").stat().st_size > 5000
    assert (shots / "oauth-consent.png").stat().st_size > 5000
    # the whole story is in the audit log: consent, grant (as an McpToken), revocation
    events = s.mcpd.ok("GET", "/auditevents", params={"subject": DEV})["items"]
    actions = {(e["action"], e["kind"]) for e in events}
    assert {("oauth-consent", "projects"), ("create", "mcptokens"), ("revoke", "mcptokens")} <= (
        actions
    )
