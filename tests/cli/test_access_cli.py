"""``mcpctl auth can-i --list`` and ``mcpctl auth who-can`` against a real mcpd, as real
processes: the table and JSON outputs, the operations mcpd checks, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

from tests.cli.conftest import ADMIN, PASSWORD

EXE = str(Path(sys.executable).with_name("mcpctl"))


def run(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args], input=stdin, env=env, capture_output=True, text=True, timeout=60
    )


def test_can_i_list_and_who_can(cli_env: dict[str, str], tmp_path: Path) -> None:
    admin = cli_env
    assert (
        run(admin, "login", "-u", ADMIN, "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    )
    proj, dev = f"p-{uuid.uuid4().hex[:8]}", f"dev-{uuid.uuid4().hex[:8]}"
    assert run(admin, "create", "project", proj).returncode == 0
    assert (
        run(admin, "create", "user", dev, "--password-stdin", stdin="dev password 1\n").returncode
        == 0
    )
    r = run(admin, "create", "rbac", f"rb-{dev}", "--subject", f"User:{dev}",
            "--roleBindings", f"role:view,resource:servers,project:{proj}")  # fmt: skip
    assert r.returncode == 0, r.stderr
    dev_env = {**cli_env, "MCPCTL_CONFIG": str(tmp_path / "dev.yaml")}
    r = run(dev_env, "login", "-u", dev, "--password-stdin", stdin="dev password 1\n")
    assert r.returncode == 0, r.stderr

    # the developer's own list, as a table and as JSON
    r = run(dev_env, "auth", "can-i", "--list", "--project", proj)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"User:{dev} in project {proj}: ")
    assert lines[1].split() == ["PROJECT", "KIND", "NAME", "VERBS", "VIA", "LINE"]
    mine = [ln for ln in lines if f"User:{dev}   " in ln]
    assert len(mine) == 1 and mine[0].split()[:5] == [
        proj,
        "servers",
        "*",
        "get,list",
        f"User:{dev}",
    ]
    assert f"`p, User:{dev}, {proj}, servers, *, role:view, allow` (db:rbac/rb-{dev}#" in mine[0]
    doc = json.loads(run(dev_env, "auth", "can-i", "--list", "-o", "json").stdout)
    assert (doc["schemaVersion"], doc["kind"], doc["subject"]) == (1, "AccessList", f"User:{dev}")

    # another subject's list needs impersonate (exit 2, denied); the admin has it
    r = run(dev_env, "auth", "can-i", "--list", "--as", f"User:{ADMIN}")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "needs the impersonate operation" in r.stderr
    r = run(admin, "auth", "can-i", "--list", "--as", f"User:{dev}", "-o", "json")
    assert json.loads(r.stdout)["subject"] == f"User:{dev}"

    # who-can: the admin may ask, the developer may not
    r = run(admin, "auth", "who-can", "get", "servers/github", "--project", proj)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("allowed (")
    row = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith(f"User:{dev} "))
    assert f"User:{dev} -> role:view" in row and "role:view, allow`" in row
    doc = json.loads(run(admin, "auth", "who-can", "get", "server/github", "-p", proj,
                         "-o", "json").stdout)  # fmt: skip
    assert doc["kind"] == "WhoCan" and doc["request"]["kind"] == "servers"
    assert f"User:{dev}" in {a["subject"] for a in doc["allowed"]}
    r = run(dev_env, "auth", "who-can", "get", "servers/github", "--project", proj)
    assert r.returncode == 2 and "needs the who-can operation" in r.stderr

    # invalid input: exit 3 with the reason
    r = run(admin, "auth", "who-can", "get", "nope/x")
    assert r.returncode == 3 and "unknown kind `nope`" in r.stderr
    r = run(admin, "auth", "who-can", "GET", "servers/x")
    assert r.returncode == 3, (r.returncode, r.stderr)
    r = run(admin, "auth", "can-i", "--list", "get", "servers")
    assert r.returncode == 3 and "--list takes no VERB" in r.stderr
    r = run(admin, "auth", "can-i")
    assert r.returncode == 3 and "give VERB and KIND" in r.stderr
