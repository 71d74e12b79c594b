"""Instances: real MCP servers run and reached through mcpd's per-server endpoint.

mcpd runs in this process under uvicorn on a loopback port (real HTTP, so the MCP SDK's
own client talks to it); the upstreams are real subprocesses: small servers in
tests/servers that crash, hang or flood stderr, ``mcp-server-time`` from PyPI, and a
Streamable HTTP server that wants its own bearer.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
import uvicorn
import yaml
from cryptography.fernet import Fernet
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from mcpd.app import create_app
from mcpd.settings import Settings
from tests.servers.launch import free_port, start_http
from upstream.serving import CoalescingHttpProtocol
from upstream.stdio import BASE_ENV

ADMIN = "root@example.com"
PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def stdio_spec(kind: str, *extra: str, env: dict[str, Any] | None = None) -> dict[str, Any]:
    args = ["-m", "tests.servers.stdio_server", "--kind", kind, *extra]
    return {"transport": "stdio", "stdio": {"command": PY, "args": args, "env": env or {}}}


@dataclass
class Mcpd:
    base: str
    admin: str
    app: Any

    def h(self, bearer: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {bearer or self.admin}"}

    def call(self, method: str, path: str, bearer: str | None = None, **kw: Any) -> httpx.Response:
        return httpx.request(
            method, f"{self.base}/api/v1{path}", headers=self.h(bearer), timeout=30, **kw
        )

    def ok(self, method: str, path: str, bearer: str | None = None, **kw: Any) -> Any:
        r = self.call(method, path, bearer, **kw)
        assert r.status_code < 300, (r.status_code, r.text)
        return r.json() if r.content else None

    def server(self, name: str, spec: dict[str, Any], **extra: Any) -> None:
        self.ok("POST", "/servers", json={"name": name, **spec, **extra})

    def instance(self, name: str) -> dict[str, Any]:
        got: dict[str, Any] = self.ok("GET", f"/instances/{name}")
        return got

    def wait_instance(
        self, name: str, pred: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            inst = self.instance(name)
            if pred(inst):
                return inst
            assert time.monotonic() < deadline, f"instance never got there: {inst}"
            time.sleep(0.05)

    def logs(self, name: str, tail: int = 1000) -> str:
        r = self.call("GET", f"/servers/{name}/logs", params={"tail": tail})
        assert r.status_code == 200, r.text
        return r.text

    def login(self, user: str, *bindings: str) -> str:
        self.ok("POST", "/users", json={"name": user, "password": PASSWORD})
        if bindings:
            self.ok(
                "POST",
                "/rbac",
                json={
                    "name": f"rb-{user.split('@')[0]}",
                    "subjects": [f"User:{user}"],
                    "roleBindings": bindings,
                },
            )
        r = httpx.post(
            f"{self.base}/api/v1/auth/login", json={"username": user, "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        token: str = r.json()["token"]
        return token


@contextmanager
def serve_mcpd(settings: Settings, port: int | None = None) -> Iterator[Mcpd]:
    port = port or free_port()
    app = create_app(settings.model_copy(update={"port": port}))  # mcpd knows where it listens
    config = uvicorn.Config(  # (with the HTTP protocol `mcpd serve` runs)
        app, host="127.0.0.1", port=port, log_level="warning", http=CoalescingHttpProtocol
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "mcpd did not start"
            time.sleep(0.02)
        r = httpx.post(f"{base}/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD})
        assert r.status_code == 200, r.text
        yield Mcpd(base, r.json()["token"], app)
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "mcpd did not stop"


def make_settings(db_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "bootstrap_admin": ADMIN,
        "bootstrap_password": PASSWORD,
        "secrets_key": Fernet.generate_key().decode(),
        "secrets_key_file": tmp_path / "unused.key",
        "log_dir": tmp_path / "logs",
        "instance_stop_grace": 2.0,
        **overrides,
    }
    return Settings(**values)


def settings_with_policy(tmp_path: Path, *lines: str) -> Settings:
    """Settings for an mcpd on SQLite whose policy is the project's plus ``lines``."""
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies)
    (policies / "zz-test.csv").write_text("".join(line + "\n" for line in lines))
    return make_settings(f"sqlite:///{tmp_path / 'm.db'}", tmp_path, policy_dir=policies)


@pytest.fixture
def mcpd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mcpd]:
    monkeypatch.chdir(ROOT)  # the test servers run as `python -m tests.servers...`
    with serve_mcpd(make_settings(f"sqlite:///{tmp_path / 'mcpd.db'}", tmp_path)) as m:
        yield m


@asynccontextmanager
async def mcp_session(url: str, bearer: str) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {bearer}"}, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def mcp_url(m: Mcpd, name: str, project: str = "") -> str:
    return f"{m.base}/api/v1/servers/{name}/mcp" + (f"?project={project}" if project else "")


def text(result: Any) -> str:
    return "".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def run(fn: Callable[[], Any]) -> Any:
    return anyio.run(fn)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def group_member(pgid: int, comm: str, timeout: float = 10.0) -> int:
    """The pid (as this process sees it) of the process named ``comm`` in group ``pgid``:
    a grandchild, found from outside (a sandboxed child has its own PID namespace and /tmp,
    so it cannot tell its pid by a file)."""
    deadline = time.monotonic() + timeout
    while True:
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/stat") as f:
                    name, rest = f.read().split(" (", 1)[1].rsplit(") ", 1)
            except (OSError, IndexError, ValueError):
                continue
            if name == comm and int(rest.split()[2]) == pgid:
                return int(entry)
        assert time.monotonic() < deadline, f"no `{comm}` in process group {pgid}"
        time.sleep(0.05)


# -- the main path --------------------------------------------------------------------------


def test_stdio_server_through_mcpd(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite and on PostgreSQL (the db_url fixture)."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MCPD_TEST_SECRET_IN_PARENT", "must not leak")
    with serve_mcpd(make_settings(db_url, tmp_path)) as m:
        m.ok("POST", "/secrets", json={"name": "greet", "data": {"word": "hello"}})
        m.server(
            "demo",
            stdio_spec("demo", env={"PLAIN": "1", "GREETING": {"secretRef": "greet/word"}}),
        )
        assert m.instance("demo")["status"] == "STOPPED"  # started on first use only
        progress: list[tuple[float, float | None, str | None]] = []

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            progress.append((p, total, message))

        async def flow() -> dict[str, Any]:
            async with mcp_session(mcp_url(m, "demo"), m.admin) as s:
                tools = {t.name for t in (await s.list_tools()).tools}
                added = await s.call_tool("add", {"a": 2, "b": 3})
                env = await s.call_tool("env", {})
                echoed = await s.call_tool("echo", {"text": "hi"})
                done = await s.call_tool("progress", {}, progress_callback=on_progress)
                return {"tools": tools, "add": added, "env": env, "echo": echoed, "done": done}

        out = run(flow)
        assert {"add", "echo", "sleep", "crash", "env", "progress"} <= out["tools"]
        assert text(out["add"]) == "5" and text(out["echo"]) == "hi"
        assert text(out["done"]) == "done"
        assert [p[0] for p in progress] == [1, 2, 3] and progress[-1][2] == "step 3"
        # only what the server declares (secrets resolved) plus a minimal base
        names = set(text(out["env"]).split(","))
        assert {"PLAIN", "GREETING"} <= names
        assert names - {"PLAIN", "GREETING"} <= set(BASE_ENV) | {"LC_CTYPE", "PWD"}
        inst = m.instance("demo")
        assert inst["status"] == "RUNNING" and inst["pid"] and inst["restarts"] == 0
        assert any(i["server"] == "demo" for i in m.ok("GET", "/instances")["items"])
        assert "demo server starting" in m.logs("demo")
        assert "hello" not in m.logs("demo")  # the secret's value is nowhere in the logs
        assert (tmp_path / "logs" / "demo.log").read_text().count("demo server starting") == 1


def test_run_is_required_and_tools_are_checked(mcpd: Mcpd) -> None:
    m = mcpd
    m.server("demo", stdio_spec("demo"))
    m.server("other", stdio_spec("demo"))
    viewer = m.login("viewer@example.com", "role:view,resource:servers")
    runner = m.login("runner@example.com", "role:run,resource:servers,name:demo")
    r = m.call("POST", "/servers/demo/mcp", viewer, json={})
    assert r.status_code == 403 and "may not run servers/demo" in r.json()["detail"]
    r = m.call("POST", "/servers/other/mcp", runner, json={})
    assert r.status_code == 404  # runner may not even see `other`
    assert m.call("POST", "/servers/nope/mcp", json={}).status_code == 404
    assert m.call("POST", "/servers/demo/mcp", "mcpctl_pat_" + "x" * 43, json={}).status_code == 401

    async def flow() -> str:
        async with mcp_session(mcp_url(m, "demo"), runner) as s:
            result = await s.call_tool("add", {"a": 1, "b": 1})
            return text(result)

    assert run(flow) == "2"
    denies = m.ok("GET", "/auditevents", params={"outcome": "deny"})["items"]
    assert any(e["action"] == "run" and e["name"] == "demo" for e in denies)


def test_tool_level_deny_hides_and_blocks_the_tool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    settings = settings_with_policy(
        tmp_path, "p, User:bob@example.com, *, tools, demo__crash, role:run, deny"
    )
    with serve_mcpd(settings) as m:
        m.server("demo", stdio_spec("demo"))
        bob = m.login("bob@example.com", "role:run,resource:servers,name:demo")

        async def flow() -> tuple[set[str], str, str]:
            async with mcp_session(mcp_url(m, "demo"), bob) as s:
                tools = {t.name for t in (await s.list_tools()).tools}
                errors = []
                for name in ("crash", "no_such_tool"):
                    try:
                        await s.call_tool(name, {})
                    except MCPError as exc:
                        errors.append(exc.message)
                    else:
                        errors.append("")
                return tools, errors[0], errors[1]

        tools, denied, _unknown = run(flow)
        assert "crash" not in tools and "add" in tools
        assert denied == "Unknown tool: crash"
        assert m.instance("demo")["restarts"] == 0  # the call never reached the server
        denies = m.ok("GET", "/auditevents", params={"outcome": "deny"})["items"]
        assert any(e["kind"] == "tools" and e["name"] == "demo__crash" for e in denies)


def test_token_reaches_only_its_projects_servers(mcpd: Mcpd) -> None:
    m = mcpd
    m.server("demo", stdio_spec("demo"))
    m.server("other", stdio_spec("demo"))
    m.ok("POST", "/projects", json={"name": "p1", "servers": ["demo"]})
    token = m.ok(
        "POST",
        "/mcptokens",
        json={"name": "t1", "project": "p1", "bindings": ["role:run,resource:servers"]},
    )["token"]
    assert m.call("POST", "/servers/other/mcp", token, json={}).status_code == 404
    r = m.call("POST", "/servers/demo/mcp", token, params={"project": "p2"}, json={})
    assert r.status_code in (403, 404)

    async def flow() -> str:
        async with mcp_session(mcp_url(m, "demo"), token) as s:
            return text(await s.call_tool("echo", {"text": "via token"}))

    assert run(flow) == "via token"
    m.ok("POST", "/mcptokens/t1/revoke")
    assert m.call("POST", "/servers/demo/mcp", token, json={}).status_code == 401


# -- faults ---------------------------------------------------------------------------------


def test_upstream_killed_mid_call_then_restarted(mcpd: Mcpd) -> None:
    m = mcpd
    m.server("demo", stdio_spec("demo"))

    async def crash_while_sleeping() -> tuple[float, Any]:
        async with mcp_session(mcp_url(m, "demo"), m.admin) as s:
            await s.call_tool("add", {"a": 1, "b": 2})
            pid = m.instance("demo")["pid"]
            outcome: dict[str, Any] = {}

            async def sleeper() -> None:
                outcome["sleep"] = await s.call_tool("sleep", {"seconds": 30})
                outcome["at"] = time.monotonic()

            async with anyio.create_task_group() as tg:
                tg.start_soon(sleeper)
                await anyio.sleep(0.3)
                killed_at = time.monotonic()
                os.kill(pid, signal.SIGKILL)
            return outcome["at"] - killed_at, outcome["sleep"]

    elapsed, result = run(crash_while_sleeping)
    assert result.is_error and "`demo`" in text(result)
    assert elapsed < 1.0
    inst = m.wait_instance("demo", lambda i: i["status"] == "RUNNING" and i["restarts"] == 1)
    assert "process exited" in m.logs("demo")

    async def again() -> str:
        async with mcp_session(mcp_url(m, "demo"), m.admin) as s:
            return text(await s.call_tool("add", {"a": 2, "b": 2}))

    assert run(again) == "4"
    assert inst["pid"] != m.instance("demo")["pid"] or inst["pid"]


def test_crash_inside_a_call_is_an_error_result(mcpd: Mcpd) -> None:
    m = mcpd
    m.server("demo", stdio_spec("demo"))

    async def flow() -> Any:
        async with mcp_session(mcp_url(m, "demo"), m.admin) as s:
            return await s.call_tool("crash", {})

    result = run(flow)
    assert result.is_error and "`demo`" in text(result)
    m.wait_instance("demo", lambda i: i["status"] == "RUNNING" and i["restarts"] == 1)
    assert "crashing on purpose" in m.logs("demo")


def test_upstream_that_never_answers_initialize(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    # long enough for `demo` (a Python child importing the SDK) to start on a busy 2-core
    # machine, where 1 s was not; `hang` never answers, whatever the timeout
    settings = make_settings(f"sqlite:///{tmp_path / 'm.db'}", tmp_path, instance_start_timeout=4.0)
    with serve_mcpd(settings) as m:
        m.server("hang", stdio_spec("hang"))
        m.server("demo", stdio_spec("demo"))

        async def flow() -> list[tuple[float, str]]:
            out = []
            async with mcp_session(mcp_url(m, "hang"), m.admin) as s:
                for _ in range(2):
                    began = time.monotonic()
                    try:
                        await s.list_tools()
                        message = ""
                    except MCPError as exc:
                        message = exc.message
                    out.append((time.monotonic() - began, message))
            async with mcp_session(mcp_url(m, "demo"), m.admin) as s:  # others unharmed
                out.append((0.0, text(await s.call_tool("add", {"a": 1, "b": 1}))))
            return out

        (t1, e1), (t2, e2), (_, other) = run(flow)
        assert "`hang`" in e1 and "initialize" in e1
        assert "`hang`" in e2
        assert t2 < t1  # the second answer comes from the negative cache, not another wait
        assert other == "2"
        assert "initialize" in (m.instance("hang")["lastError"] or "")


def test_repeated_crashes_end_in_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    settings = make_settings(f"sqlite:///{tmp_path / 'm.db'}", tmp_path, instance_max_crashes=3)
    with serve_mcpd(settings) as m:
        m.server("bad", stdio_spec("exit"))
        r = m.call("POST", "/servers/bad/mcp", json={})  # first use starts it
        assert r.status_code in (200, 400, 406)
        inst = m.wait_instance("bad", lambda i: i["status"] == "FAILED", timeout=30)
        assert inst["restarts"] == 3
        logs = m.logs("bad")
        assert logs.count("cannot start: no configuration") == 3
        assert "FAILED" in logs


def test_stderr_flood_is_bounded_and_harmless(mcpd: Mcpd) -> None:
    m = mcpd
    m.server("loud", stdio_spec("flood"))

    async def flow() -> list[str]:
        async with mcp_session(mcp_url(m, "loud"), m.admin) as s:
            out = []
            for i in range(20):
                out.append(text(await s.call_tool("add", {"a": i, "b": 1})))
                await anyio.sleep(0.05)
            return out

    assert run(flow) == [str(i + 1) for i in range(20)]
    assert httpx.get(f"{m.base}/healthz").status_code == 200
    inst = m.wait_instance("loud", lambda i: i["logLinesDropped"] > 0)
    assert inst["status"] == "RUNNING"
    logs = m.logs("loud", tail=10_000).splitlines()
    assert len(logs) <= 2000  # the ring buffer's bound
    assert any("lines of stderr dropped" in line for line in logs)


def test_delete_stops_the_whole_process_group(mcpd: Mcpd, tmp_path: Path) -> None:
    m = mcpd
    m.server("gc", stdio_spec("grandchild"))

    async def flow() -> str:
        async with mcp_session(mcp_url(m, "gc"), m.admin) as s:
            return text(await s.call_tool("add", {"a": 1, "b": 1}))

    assert run(flow) == "2"
    pid = m.instance("gc")["pid"]
    grandchild = group_member(pid, "sleep")
    assert alive(pid) and alive(grandchild)
    m.ok("DELETE", "/servers/gc")
    assert not alive(pid) and not alive(grandchild)


@pytest.mark.parametrize("path", ["/servers/demo", "/restore", "/apply"])
def test_config_change_restarts_the_instance(mcpd: Mcpd, path: str) -> None:
    """Through the API, and through restore and apply alike (the same service effects)."""
    m = mcpd
    m.server("demo", stdio_spec("demo", env={"FIRST": "1"}))

    async def env() -> str:
        async with mcp_session(mcp_url(m, "demo"), m.admin) as s:
            return text(await s.call_tool("env", {}))

    assert "FIRST" in run(env)
    spec = stdio_spec("demo", env={"SECOND": "2"})["stdio"]
    if path.startswith("/servers"):
        m.ok("PUT", path, json={"stdio": spec})
    else:
        doc = {
            "apiVersion": "mcpctl/v1",
            "kind": "Server",
            "metadata": {"name": "demo"},
            "spec": {"transport": "stdio", "stdio": spec},
        }
        r = m.call("POST", path, content=yaml.safe_dump(doc))
        assert r.status_code == 200 and r.json()["updated"] == 1, r.text
    m.wait_instance("demo", lambda i: i["status"] == "RUNNING")
    names = run(env)
    assert "SECOND" in names and "FIRST" not in names
    assert m.instance("demo")["restarts"] == 0  # a restart asked for is not a crash


def test_logs_follow_streams_new_lines(mcpd: Mcpd) -> None:
    m = mcpd
    m.server("demo", stdio_spec("demo"))
    seen: list[str] = []

    def follow() -> None:
        with httpx.stream(
            "GET",
            f"{m.base}/api/v1/servers/demo/logs",
            params={"follow": "true", "tail": 0},
            headers=m.h(),
            timeout=30,
        ) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                seen.append(line)
                if "shout 4" in line:
                    return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    time.sleep(0.3)

    async def flow() -> str:
        async with mcp_session(mcp_url(m, "demo"), m.admin) as s:
            return text(await s.call_tool("shout", {"lines": 5}))

    assert run(flow) == "5 lines"
    reader.join(10)
    assert not reader.is_alive()
    assert [line.split(" ", 1)[1] for line in seen if "shout" in line] == [
        f"shout {i}" for i in range(5)
    ]
    nobody = m.login("nobody@example.com", "role:view,resource:servers")
    r = m.call("GET", "/servers/demo/logs", nobody)
    assert r.status_code == 403 and "logs" in r.json()["detail"]


def test_health_probe_marks_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    settings = make_settings(f"sqlite:///{tmp_path / 'm.db'}", tmp_path, probe_interval=0.2)
    with serve_mcpd(settings) as m:
        m.server("demo", stdio_spec("demo"))  # default probe: tools/list
        m.server("pinged", stdio_spec("demo"), healthCheck={"intervalSeconds": 1})
        for name in ("demo", "pinged"):
            assert m.call("POST", f"/servers/{name}/mcp", json={}).status_code < 500
        for name in ("demo", "pinged"):
            inst = m.wait_instance(name, lambda i: i["health"] == "healthy")
            assert inst["lastProbeAt"]


# -- other real servers ----------------------------------------------------------------------


def test_mcp_server_time_from_pypi(mcpd: Mcpd) -> None:
    m = mcpd
    command = Path(sys.executable).with_name("mcp-server-time")
    m.server("time", {"transport": "stdio", "stdio": {"command": str(command), "args": []}})

    async def flow() -> tuple[set[str], str]:
        async with mcp_session(mcp_url(m, "time"), m.admin) as s:
            tools = {t.name for t in (await s.list_tools()).tools}
            now = await s.call_tool("get_current_time", {"timezone": "UTC"})
            return tools, text(now)

    tools, now = run(flow)
    assert "get_current_time" in tools and '"timezone": "UTC"' in now


def test_http_upstream_gets_its_own_credentials_not_the_callers(mcpd: Mcpd, tmp_path: Path) -> None:
    m = mcpd
    port = free_port()
    upstream = start_http("demo", port, token="t")
    try:
        m.ok("POST", "/secrets", json={"name": "up", "data": {"auth": "Bearer t"}})
        m.server(
            "remote",
            {
                "transport": "http",
                "http": {
                    "url": f"http://127.0.0.1:{port}/mcp",
                    "headers": {"Authorization": {"secretRef": "up/auth"}},
                },
            },
        )

        async def flow() -> str:
            async with mcp_session(mcp_url(m, "remote"), m.admin) as s:
                return text(await s.call_tool("add", {"a": 20, "b": 22}))

        assert run(flow) == "42"
        upstream.kill()
        upstream.wait()

        async def after_death() -> Any:
            async with mcp_session(mcp_url(m, "remote"), m.admin) as s:
                return await s.call_tool("add", {"a": 1, "b": 1})

        result = run(after_death)
        assert result.is_error and "`remote`" in text(result)
    finally:
        upstream.kill()
        upstream.wait()


# -- mcpd itself stopping ------------------------------------------------------------------


def test_mcpd_stop_leaves_no_children(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCPD_LOG_DIR", str(tmp_path / "logs"))
    from tests.mcpd.test_e2e_http import mcpd_serve

    with mcpd_serve(f"sqlite:///{tmp_path / 'm.db'}", tmp_path) as base:
        login = httpx.post(
            f"{base}/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD}
        )
        m = Mcpd(base, login.json()["token"], None)
        m.server("gc", stdio_spec("grandchild"))
        m.server("demo", stdio_spec("demo"))
        for name in ("gc", "demo"):
            assert m.call("POST", f"/servers/{name}/mcp", json={}).status_code < 500
            m.wait_instance(name, lambda i: i["status"] == "RUNNING")
        gc = m.instance("gc")["pid"]
        pids = [gc, m.instance("demo")["pid"], group_member(gc, "sleep")]
        assert all(alive(p) for p in pids)
    # mcpd_serve stopped mcpd with SIGTERM (it waits for it to exit)
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids), [p for p in pids if alive(p)]


EVERYTHING = ROOT / ".tools/npm/node_modules/.bin/mcp-server-everything"


@pytest.mark.skipif(
    shutil.which("node") is None, reason="Node.js is not installed: no npm MCP servers"
)
def test_server_everything_from_npm(mcpd: Mcpd) -> None:
    """`scripts/ensure-node-tools.sh` (run by `make test`) installs it where Node is."""
    assert EVERYTHING.exists(), "run scripts/ensure-node-tools.sh"
    m = mcpd
    spec = {"command": str(EVERYTHING), "args": ["stdio"]}
    m.server("everything", {"transport": "stdio", "stdio": spec})

    async def flow() -> tuple[set[str], str, int, int]:
        async with mcp_session(mcp_url(m, "everything"), m.admin) as s:
            tools = {t.name for t in (await s.list_tools()).tools}
            echoed = text(await s.call_tool("echo", {"message": "hi"}))
            resources = len((await s.list_resources()).resources)
            prompts = len((await s.list_prompts()).prompts)
            return tools, echoed, resources, prompts

    tools, echoed, resources, prompts = run(flow)
    assert {"echo", "get-sum"} <= tools
    assert echoed == "Echo: hi"
    assert resources > 0 and prompts > 0


def test_graceful_shutdown_lets_a_call_in_flight_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM while a call runs: the call completes, new connections are refused, and the
    children are gone afterwards."""
    monkeypatch.setenv("MCPD_LOG_DIR", str(tmp_path / "logs"))
    from tests.mcpd.test_e2e_http import mcpd_serve

    with mcpd_serve(f"sqlite:///{tmp_path / 'm.db'}", tmp_path) as base:
        login = httpx.post(
            f"{base}/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD}
        )
        m = Mcpd(base, login.json()["token"], None)
        m.server("demo", stdio_spec("demo"))
        mcpd_pid = int(
            subprocess.run(
                ["pgrep", "-f", f"mcpd serve --host 127.0.0.1 --port {base.rsplit(':', 1)[1]}"],
                capture_output=True, text=True, check=True,
            ).stdout.split()[0]
        )  # fmt: skip

        async def flow() -> tuple[str, int]:
            async with mcp_session(mcp_url(m, "demo"), m.admin) as s:
                await s.call_tool("add", {"a": 1, "b": 1})
                child = m.instance("demo")["pid"]
                async with anyio.create_task_group() as tg:
                    out: dict[str, str] = {}

                    async def slow() -> None:
                        out["r"] = text(await s.call_tool("sleep", {"seconds": 1.5}))

                    tg.start_soon(slow)
                    await anyio.sleep(0.5)
                    os.kill(mcpd_pid, signal.SIGTERM)  # in flight: the sleep call
                return out["r"], child

        result, child = run(flow)
        assert result == "slept 1.5s"
        deadline = time.monotonic() + 15
        while alive(mcpd_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(mcpd_pid) and not alive(child)
