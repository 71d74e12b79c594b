"""mcpctl against a real mcpd: in-process (CliRunner) for output and parsing, and as a
real subprocess for the main flow."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import yaml
from typer.testing import CliRunner

from cli.main import app
from tests.cli.conftest import ADMIN, PASSWORD

runner = CliRunner()


def mcpctl(*args: str, input: str | None = None) -> tuple[int, str, str]:
    r = runner.invoke(app, list(args), input=input)
    return r.exit_code, r.stdout, r.stderr


def login(cli_env: dict[str, str]) -> None:
    code, out, err = mcpctl("login", "-u", ADMIN, "--password-stdin", input=PASSWORD + "\n")
    assert code == 0, err
    assert f"as {ADMIN}" in out


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_not_logged_in_says_what_to_do(cli_env: dict[str, str]) -> None:
    code, _, err = mcpctl("get", "servers")
    assert code == 1
    assert err.strip() == "error: not logged in: run `mcpctl login`"


def test_login_stores_token_with_mode_0600_and_logout_forgets_it(cli_env: dict[str, str]) -> None:
    login(cli_env)
    path = Path(cli_env["MCPCTL_CONFIG"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = yaml.safe_load(path.read_text())["contexts"]["default"]["token"]
    assert token.startswith("mcpctl_ses_")
    code, out, _ = mcpctl("config", "view")
    assert code == 0
    assert token not in out
    assert "token: '***'" in out
    assert mcpctl("auth", "whoami")[1].strip() == ADMIN
    assert mcpctl("logout")[0] == 0
    assert yaml.safe_load(path.read_text())["contexts"]["default"].get("token") is None
    assert mcpctl("auth", "whoami")[0] == 1


def test_wrong_password_is_an_error(cli_env: dict[str, str]) -> None:
    code, _, err = mcpctl("login", "-u", ADMIN, "--password-stdin", input="nope\n")
    assert code == 1
    assert "wrong user name or password" in err


def test_create_get_output_formats_and_delete(cli_env: dict[str, str]) -> None:
    login(cli_env)
    srv = uniq("srv")
    assert (
        mcpctl("create", "server", srv, "--transport", "http", "--url", "http://127.0.0.1:9/mcp")[0]
        == 0
    )
    proj = uniq("proj")
    code, out, err = mcpctl("create", "project", proj, "--server", srv, "--description", "demo")
    assert code == 0, err
    assert out.strip() == f"project/{proj} created"
    code, out, _ = mcpctl("get", "project", proj, "-o", "json")
    body = json.loads(out)  # a manifest, as `apply -f` takes it
    assert body["kind"] == "Project"
    assert body["spec"]["servers"] == [srv]
    assert body["spec"]["description"] == "demo"
    code, out, _ = mcpctl("get", "project", proj, "-o", "yaml")
    assert yaml.safe_load(out)["metadata"] == {"name": proj}
    code, out, _ = mcpctl("get", "projects", "-o", "name")
    assert f"project/{proj}" in out.splitlines()
    code, out, _ = mcpctl("get", "projects")  # piped: plain columns with a header
    assert out.splitlines()[0].split()[:2] == ["NAME", "SERVERS"]
    assert any(line.startswith(proj) for line in out.splitlines())
    assert mcpctl("delete", "project", proj)[0] == 0
    code, _, err = mcpctl("get", "project", proj)
    assert code == 1
    assert "not found" in err


def test_invalid_input_exits_3_and_denied_exits_2(cli_env: dict[str, str]) -> None:
    login(cli_env)
    code, _, err = mcpctl("create", "project", "Bad_Name")
    assert code == 3
    assert "invalid:" in err
    code, _, err = mcpctl(
        "create",
        "rbac",
        uniq("rb"),
        "--subject",
        "User:x",
        "--roleBindings",
        "role:nope,resource:servers",
    )
    assert code == 3
    assert "unknown role `nope`" in err
    code, out, _ = mcpctl("auth", "can-i", "delete", "servers/x")
    assert (code, out.strip()) == (0, "yes")
    code, out, _ = mcpctl("auth", "can-i", "delete", "servers/x", "--as", "User:nobody")
    assert code == 2
    assert out.startswith("no - no policy line allows User:nobody")
    assert mcpctl("auth", "can-i", "delete", "servers/x", "--as", "User:nobody", "-q") == (
        2,
        "",
        "",
    )


def test_secret_values_never_printed(cli_env: dict[str, str]) -> None:
    login(cli_env)
    name = uniq("sec")
    assert mcpctl("create", "secret", name, "--from-literal", "token=hunter2-value")[0] == 0
    for fmt in ("table", "json", "yaml"):
        _, out, _ = mcpctl("get", "secret", name, "-o", fmt)
        assert "hunter2-value" not in out
    _, out, _ = mcpctl("get", "secrets")
    assert "token" in out


def test_main_flow_as_a_real_process(cli_env: dict[str, str], tmp_path: Path) -> None:
    exe = str(Path(sys.executable).with_name("mcpctl"))

    def run(
        *args: str, stdin: str | None = None, env: dict[str, str] = cli_env
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [exe, *args], input=stdin, env=env, capture_output=True, text=True, timeout=60
        )

    assert run("login", "-u", ADMIN, "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    srv, proj, dev = uniq("srv"), uniq("proj"), uniq("dev")
    assert (
        run(
            "create", "server", srv, "--transport", "stdio", "--command", "mcp-server-time"
        ).returncode
        == 0
    )
    assert run("create", "project", proj, "--server", srv).returncode == 0
    assert run("create", "user", dev, "--password-stdin", stdin="dev password 1\n").returncode == 0
    r = run(
        "create",
        "rbac",
        uniq("rb"),
        "--subject",
        f"User:{dev}",
        "--roleBindings",
        f"role:view,resource:projects,project:{proj}",
        "--roleBindings",
        f"role:edit,resource:mcptokens,project:{proj}",
    )
    assert r.returncode == 0, r.stderr
    # the developer, in its own config, mints a token for the project
    dev_env = {**cli_env, "MCPCTL_CONFIG": str(tmp_path / "dev.yaml")}
    assert (
        run(
            "login", "-u", dev, "--password-stdin", stdin="dev password 1\n", env=dev_env
        ).returncode
        == 0
    )
    r = run("create", "mcptoken", "ci", "--project", proj, "--rbac", "clone", env=dev_env)
    assert r.returncode == 0, r.stderr
    raw = r.stdout.strip()
    assert raw.startswith("mcpctl_pat_")
    assert "will not be shown again" in r.stderr
    r = run("get", "mcptokens", "--project", proj, "-o", "json", env=dev_env)
    tokens = json.loads(r.stdout)
    assert [t["name"] for t in tokens] == ["ci"]
    assert raw not in r.stdout
    # the token acts in its project
    token_env = {**cli_env, "MCPCTL_CONFIG": str(tmp_path / "token.yaml")}
    Path(token_env["MCPCTL_CONFIG"]).write_text(
        yaml.safe_dump({"currentContext": "default", "contexts": {"default": {"token": raw}}})
    )
    r = run("get", "project", proj, "-o", "name", env=token_env)
    assert (r.returncode, r.stdout.strip()) == (0, f"project/{proj}")
    # too much: the developer may not grant editing servers
    r = run(
        "create",
        "mcptoken",
        "big",
        "--project",
        proj,
        "--bind",
        "role:edit,resource:servers",
        env=dev_env,
    )
    assert r.returncode == 2
    assert "missing" in r.stderr
    assert run("mcptoken", "revoke", "ci", env=dev_env).returncode == 0
    r = run("get", "project", proj, env=token_env)
    assert r.returncode == 1
    assert "run `mcpctl login`" in r.stderr
    assert run("delete", "project", proj).returncode == 0


def test_describe_shows_related_objects(cli_env: dict[str, str]) -> None:
    login(cli_env)
    srv, proj = uniq("srv"), uniq("proj")
    assert (
        mcpctl("create", "server", srv, "--transport", "http", "--url", "http://127.0.0.1:9/m")[0]
        == 0
    )
    assert mcpctl("create", "project", proj, "--server", srv)[0] == 0
    assert mcpctl("create", "mcptoken", "tok-" + proj, "--project", proj, "--ttl", "never")[0] == 0
    code, out, err = mcpctl("describe", "project", proj)
    assert code == 0, err
    assert f"Servers:\n  {srv}" in out
    assert f"tok-{proj}  empty  expires never" in out
    code, out, _ = mcpctl("describe", "server", srv)
    assert f"Projects:\n  {proj}" in out
    code, out, _ = mcpctl("describe", "mcptoken", "tok-" + proj)
    assert "Bindings:\n  (none: rbac mode empty)" in out


def test_get_auditevents_with_filters(cli_env: dict[str, str]) -> None:
    login(cli_env)
    name = uniq("aud")
    assert mcpctl("create", "project", name)[0] == 0
    code, out, err = mcpctl("get", "auditevents", "--filter", f"name={name}", "-o", "json")
    assert code == 0, err
    events = json.loads(out)
    assert [(e["action"], e["kind"], e["outcome"]) for e in events] == [
        ("create", "projects", "allow")
    ]
    # -o wide: the policy revision the decision was made under, among the wide columns
    code, out, err = mcpctl("get", "auditevents", "--filter", f"name={name}", "-o", "wide")
    assert code == 0, err
    header, row = out.splitlines()[:2]
    assert "POLICY REVISION" in header.upper() and events[0]["policyRevision"] in row
    code, _, err = mcpctl("get", "auditevents", "--filter", "nonsense")
    assert code == 3
    code, _, err = mcpctl("get", "auditevents", "--filter", "outcome=maybe")
    assert code == 3
    assert "outcome" in err


def test_serviceaccount_create_rotate_revoke_get_describe_and_manifest(
    cli_env: dict[str, str],
) -> None:
    login(cli_env)
    name = uniq("bot")
    code, first, err = mcpctl("create", "serviceaccount", name, "--description", "a bot")
    assert code == 0, err
    first = first.strip()
    assert first.startswith("mcpctl_sa_") and "it will not be shown again" in err
    code, second, err = mcpctl("serviceaccount", "rotate", name)
    assert code == 0, err
    second = second.strip()
    assert second.startswith("mcpctl_sa_") and second != first
    assert f"still valid: {first[:17]}" in err
    code, out, _ = mcpctl("get", "serviceaccount", name)
    assert f"{first[:17]},{second[:17]}" in out  # two valid at once
    assert first not in out and second not in out
    code, out, err = mcpctl("serviceaccount", "revoke", name, first[:17])
    assert code == 0, err
    code, out, _ = mcpctl("get", "serviceaccount", name)
    assert second[:17] in out and first[:17] not in out  # the table lists the valid ones
    code, out, _ = mcpctl("describe", "serviceaccount", name)
    assert f"{first[:17]}  created" in out and "REVOKED" in out
    assert f"{second[:17]}  created" in out and "last used never" in out
    code, out, _ = mcpctl("get", "serviceaccount", name, "-o", "yaml")
    assert yaml.safe_load(out) == {
        "apiVersion": "mcpctl/v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name},
        "spec": {"description": "a bot"},
    }
