"""`mcpctl logs`, `get instances` and `describe server`'s instance section, against a real
mcpd running a real stdio MCP server (tests/servers/stdio_server.py), reached through the
MCP SDK's client; `logs -f` also as a real process, stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
import yaml
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.cli.conftest import PASSWORD
from tests.cli.test_cli_flows import login, mcpctl, uniq

MCPCTL = str(Path(sys.executable).with_name("mcpctl"))


def token_of(cli_env: dict[str, str]) -> str:
    cfg = yaml.safe_load(Path(cli_env["MCPCTL_CONFIG"]).read_text())
    token: str = cfg["contexts"]["default"]["token"]
    return token


def create_demo(name: str) -> None:
    code, _, err = mcpctl(
        "create", "server", name, "--transport", "stdio", "--command", sys.executable,
        "--arg=-m", "--arg=tests.servers.stdio_server", "--arg=--kind", "--arg=demo",
    )  # fmt: skip
    assert code == 0, err


def shout(cli_env: dict[str, str], server: str, lines: int) -> str:
    """One real MCP session through mcpd's per-server endpoint (starts the instance)."""
    base, token = cli_env["MCPCTL_SERVER"], token_of(cli_env)

    async def flow() -> str:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
            streamable_http_client(f"{base}/api/v1/servers/{server}/mcp", http_client=http) as (
                r,
                w,
            ),
            ClientSession(r, w) as s,
        ):
            await s.initialize()
            result = await s.call_tool("shout", {"lines": lines})
            return "".join(getattr(c, "text", "") for c in result.content)

    out: str = anyio.run(flow)
    return out


def wait_for_log(name: str, needle: str, timeout: float = 10.0) -> str:
    """mcpd reads the child's stderr on its own: a line may land a moment after the call."""
    deadline = time.monotonic() + timeout
    while True:
        code, out, err = mcpctl("logs", name)
        assert code == 0, err
        if needle in out:
            return out
        assert time.monotonic() < deadline, f"{needle!r} never logged:\n{out}"
        time.sleep(0.1)


@pytest.fixture
def demo(cli_env: dict[str, str]) -> Iterator[str]:
    """A started demo server that has shouted 3 lines; deleted afterwards."""
    login(cli_env)
    name = uniq("demo")
    create_demo(name)
    assert shout(cli_env, name, 3) == "3 lines"
    wait_for_log(name, "shout 2")
    yield name
    mcpctl("delete", "server", name)


def test_logs_prints_the_servers_stderr(demo: str) -> None:
    code, out, err = mcpctl("logs", demo)
    assert code == 0, err
    lines = out.splitlines()
    assert any(line.endswith(" demo server starting") for line in lines)
    assert [line.split(" ", 1)[1] for line in lines if " shout " in line] == [
        "shout 0",
        "shout 1",
        "shout 2",
    ]
    code, out, _ = mcpctl("logs", demo, "--tail", "1")
    assert code == 0
    assert len(out.splitlines()) == 1
    assert out.rstrip().endswith("shout 2")
    assert mcpctl("logs", demo, "--tail", "0")[:2] == (0, "")


def test_logs_errors(cli_env: dict[str, str]) -> None:
    code, _, err = mcpctl("logs", "anything")
    assert (code, err.strip()) == (1, "error: not logged in: run `mcpctl login`")
    login(cli_env)
    code, _, err = mcpctl("logs", uniq("nosuch"))
    assert code == 1
    assert "not found" in err
    for bad in ("-1", "10001"):
        code, _, err = mcpctl("logs", "x", "--tail", bad)
        assert code == 3
        assert f"--tail {bad} is out of range: use 0 to 10000" in err


def test_get_instances_in_every_format(demo: str, cli_env: dict[str, str]) -> None:
    code, out, err = mcpctl("get", "instances", "-o", "json")
    assert code == 0, err
    mine = [i for i in json.loads(out) if i["server"] == demo]
    assert len(mine) == 1
    inst = mine[0]
    assert (inst["status"], inst["transport"], inst["restarts"]) == ("RUNNING", "stdio", 0)
    assert isinstance(inst["pid"], int) and inst["pid"] > 0
    code, out, _ = mcpctl("get", "instance", demo, "-o", "yaml")
    assert code == 0
    assert yaml.safe_load(out)["status"] == "RUNNING"
    code, out, _ = mcpctl("get", "instances", "-o", "name")
    assert f"instance/{demo}" in out.splitlines()
    code, out, _ = mcpctl("get", "instances")  # piped: plain columns with a header
    assert code == 0
    assert out.splitlines()[0].split() == [
        "SERVER", "TRANSPORT", "STATUS", "HEALTH", "RESTARTS", "PID", "LAST", "ERROR",
    ]  # fmt: skip
    row = next(line.split() for line in out.splitlines() if line.startswith(demo))
    assert row[:3] == [demo, "stdio", "RUNNING"]
    assert row[5] == str(inst["pid"])
    # a server never used is STOPPED; --project keeps that project's servers only
    idle, proj = uniq("idle"), uniq("proj")
    assert mcpctl("create", "server", idle, "--transport", "http", "--url", "http://h/m")[0] == 0
    assert mcpctl("create", "project", proj, "--server", idle)[0] == 0
    code, out, _ = mcpctl("get", "instances", "--project", proj, "-o", "json")
    assert code == 0
    assert [(i["server"], i["status"], i["pid"]) for i in json.loads(out)] == [
        (idle, "STOPPED", None)
    ]
    code, _, err = mcpctl("get", "instance", uniq("nosuch"))
    assert code == 1
    assert "not found" in err


def test_instances_are_read_only(cli_env: dict[str, str]) -> None:
    login(cli_env)
    for args in (
        ("create", "instance", "x"),
        ("create", "instances", "x", "--command", "y"),
        ("delete", "instance", "x"),
        ("delete", "instances", "x", "y"),
    ):
        code, out, err = mcpctl(*args)
        assert code == 3, (args, out, err)
        assert "instances are read-only" in err
        assert "mcpctl logs SERVER" in err
    code, out, _ = mcpctl("create", "--help")
    assert "instance" not in out


def test_describe_server_shows_its_instance(demo: str, cli_env: dict[str, str]) -> None:
    code, out, err = mcpctl("describe", "server", demo)
    assert code == 0, err
    section = out.split("Instance:\n", 1)[1].splitlines()
    fields = dict(line.strip().split(None, 1) for line in section)
    assert fields["status:"] == "RUNNING"
    assert fields["restarts:"] == "0"
    assert fields["lastError:"] == "-"
    assert int(fields["pid:"]) > 0
    assert fields["health:"] in ("healthy", "unknown")


def test_without_the_logs_operation(
    demo: str, cli_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev = uniq("dev")
    code, _, err = mcpctl("create", "user", dev, "--password-stdin", input=PASSWORD + "\n")
    assert code == 0, err
    code, _, err = mcpctl(
        "create", "rbac", uniq("rb"), "--subject", f"User:{dev}",
        "--roleBindings", "role:view,resource:servers",
    )  # fmt: skip
    assert code == 0, err
    monkeypatch.setenv("MCPCTL_CONFIG", str(tmp_path / "dev.yaml"))
    code, _, err = mcpctl("login", "-u", dev, "--password-stdin", input=PASSWORD + "\n")
    assert code == 0, err
    code, out, err = mcpctl("logs", demo)
    assert (code, out) == (2, "")
    assert err.startswith(f"error: denied: {dev} may not logs servers/{demo}")
    code, out, err = mcpctl("logs", demo, "-f")
    assert code == 2
    # it may see the server, not its projects nor its instance: describe still works
    code, out, err = mcpctl("describe", "server", demo)
    assert code == 0, err
    assert re.search(rf"^name: +{demo}$", out, re.M)  # label, spaces, value
    assert out.rstrip().endswith("Projects: (not visible)\nInstance: (not visible)")
    code, _, err = mcpctl("get", "instances")
    assert code == 2


def test_logs_follow_as_a_real_process(demo: str, cli_env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        [MCPCTL, "logs", demo, "-f"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def until(needle: str, timeout: float = 20.0) -> list[str]:
        seen, deadline = [], time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{needle!r} never came; saw {seen}") from None
            seen.append(line)
            if line.endswith(needle):
                return seen

    try:
        first = until("shout 2")  # the tail: it is connected now
        assert any(line.endswith("demo server starting") for line in first)
        assert shout(cli_env, demo, 5) == "5 lines"  # after it started
        later = until("shout 4")
        assert [line.split(" ", 1)[1] for line in later if " shout " in line] == [
            f"shout {i}" for i in range(5)
        ]
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=15) == 0
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert "Traceback" not in err and "Aborted" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        reader.join(10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_shell_completion_of_the_server_argument(demo: str, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "_MCPCTL_COMPLETE": "complete_bash", "COMP_CWORD": "2"}
    r = subprocess.run(
        [MCPCTL], env={**env, "COMP_WORDS": f"mcpctl logs {demo[:-2]}"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.stdout.split() == [demo], r.stderr
    # not logged in: nothing, and no error in the shell
    r = subprocess.run(
        [MCPCTL], env={**env, "COMP_WORDS": "mcpctl logs d", "MCPCTL_CONFIG": "/nonexistent/c"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (r.returncode, r.stdout.strip(), r.stderr) == (0, "", "")


def test_last_error_is_one_short_line_in_a_table() -> None:
    from cli.resources import _truncate

    assert _truncate(None, 20) is None and _truncate("  \n", 20) is None
    assert _truncate("exited with 3", 20) == "exited with 3"
    assert _truncate("x" * 30, 20) == "x" * 17 + "..."
    assert _truncate("first line\nTraceback ...", 20) == "first line..."
