"""``mcpctl test mcp`` against real MCP servers started as subprocesses on loopback ports
(tests/servers/mcp_http.py): in-process through CliRunner, and once as a real ``mcpctl``."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.testmcp import check_tools, connect_reason
from tests.servers.launch import free_port, http_server

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-token-for-tests"
runner = CliRunner()


@contextmanager
def _serve(tmp: Path, kind: str, token: str | None = None) -> Iterator[str]:
    """Run one tests/servers/mcp_http.py server; yield its /mcp URL; always stop it."""
    with http_server(kind, token=token, log=tmp / f"{kind}.log") as (port, _):
        yield f"http://127.0.0.1:{port}/mcp"


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _serve(tmp_path_factory.mktemp("demo"), "demo") as url:
        yield url


@pytest.fixture(scope="module")
def auth_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _serve(tmp_path_factory.mktemp("auth"), "demo", TOKEN) as url:
        yield url


@pytest.fixture(scope="module")
def time_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("mcp_server_time", reason="pip install -e '.[dev]' (mcp-server-time)")
    with _serve(tmp_path_factory.mktemp("time"), "time") as url:
        yield url


@pytest.fixture
def other_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A server of the kind named by indirect parametrization: notfound, hang or sloppy."""
    with _serve(tmp_path, request.param) as url:
        yield url


def mcpctl(*args: str) -> tuple[int, str, str]:
    r = runner.invoke(app, ["test", "mcp", *args])
    return r.exit_code, r.stdout, r.stderr


def steps(out: str) -> dict[str, dict[str, Any]]:
    body = json.loads(out)
    return {s["name"]: s for s in body["steps"]}


def test_all_steps_pass_text(demo_url: str) -> None:
    code, out, err = mcpctl(demo_url)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"mcp endpoint {demo_url}"
    assert lines[1].startswith("ok   http        HTTP 200 OK, text/event-stream  (")
    assert lines[2].startswith("ok   auth        not required")
    assert "protocol 2025-11-25, server demo 1.2.3, capabilities: tools" in lines[3]
    assert lines[4].startswith(
        "ok   tools/list  6 tools: add, echo, sleep, cancelled, count, fail  ("
    )
    assert all(line.endswith(" ms)") for line in lines[1:5])
    assert lines[-1] == "all checks passed"
    assert "✓" not in out  # not a terminal: plain ASCII
    assert err == ""


def test_all_steps_pass_json(demo_url: str) -> None:
    code, out, _ = mcpctl(demo_url, "-o", "json")
    assert code == 0
    body = json.loads(out)
    assert body["url"] == demo_url
    assert body["ok"] is True
    assert body["token"] is None
    assert [s["name"] for s in body["steps"]] == ["http", "auth", "initialize", "tools/list"]
    assert all(s["ok"] and isinstance(s["ms"], float) and s["ms"] >= 0 for s in body["steps"])
    by_name = steps(out)
    init = by_name["initialize"]
    assert init["protocol_version"] == "2025-11-25"
    assert init["server"] == {"name": "demo", "version": "1.2.3"}
    assert "tools" in init["capabilities"]
    assert by_name["tools/list"]["count"] == 6
    assert by_name["tools/list"]["problems"] == []


def test_call_success(demo_url: str) -> None:
    code, out, _ = mcpctl(demo_url, "--call", "add", "--args", '{"a": 2, "b": 40}', "-o", "json")
    assert code == 0
    call = steps(out)["tools/call"]
    assert call["ok"] is True
    assert call["is_error"] is False
    assert call["preview"] == "42"


def test_call_tool_error_is_reported_and_fails(demo_url: str) -> None:
    code, out, err = mcpctl(demo_url, "--call", "add", "--args", '{"a": "x", "b": 1}')
    assert code == 1
    assert "FAIL tools/call  `add` returned an error (isError): " in out
    assert "error: tools/call: `add` returned an error (isError)" in err


def test_call_unknown_tool(demo_url: str) -> None:
    code, out, _ = mcpctl(demo_url, "--call", "nope", "-o", "json")
    assert code == 1
    call = steps(out)["tools/call"]
    assert call["ok"] is False
    assert "nope" in call["detail"]


def test_no_token_stops_at_the_challenge(auth_url: str) -> None:
    code, out, err = mcpctl(auth_url, "-o", "json")
    assert code == 2
    body = json.loads(out)
    assert [s["name"] for s in body["steps"]] == ["http", "auth"]
    auth = body["steps"][1]
    metadata = auth_url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    assert auth["status"] == 401
    assert auth["www_authenticate"] == f'Bearer resource_metadata="{metadata}"'
    assert auth["resource_metadata"] == metadata
    assert "the server needs a token: pass --token" in err
    code, out, _ = mcpctl(auth_url)
    assert code == 2
    assert "FAIL auth  HTTP 401, WWW-Authenticate: Bearer resource_metadata=" in out


def test_bad_token_is_denied_and_never_printed(auth_url: str) -> None:
    bad = "wrong-token-value"
    code, out, err = mcpctl(auth_url, "--token", bad)
    assert code == 2
    assert "token rejected: HTTP 401" in out
    assert 'error="invalid_token"' in out
    assert bad not in out + err


def test_good_token_passes_and_is_masked(auth_url: str) -> None:
    code, out, err = mcpctl(
        auth_url, "--token", TOKEN, "--call", "echo", "--args", json.dumps({"text": TOKEN})
    )
    assert code == 0, err
    assert "token accepted (without it: HTTP 401" in out
    assert "ok   tools/call  `echo`: ***" in out
    assert TOKEN not in out + err
    code, out, _ = mcpctl(auth_url, "--token", TOKEN, "-o", "json")
    assert code == 0
    assert json.loads(out)["token"] == "***"
    assert TOKEN not in out


def test_connection_refused_fails_fast() -> None:
    port = free_port()
    start = time.monotonic()
    code, out, err = mcpctl(f"http://127.0.0.1:{port}/mcp")
    assert code == 1
    assert time.monotonic() - start < 5
    assert err.strip() == f"error: http: cannot connect to 127.0.0.1:{port}: connection refused"
    assert "FAIL http" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--call", "add", "--args", "{bad"], "--args is not valid JSON"),
        (["--call", "add", "--args", "[1, 2]"], "--args must be a JSON object, not an array"),
        (["--call", "add", "--args", "3"], "--args must be a JSON object, not a number"),
        (["--args", "{}"], "--args needs --call TOOL"),
        (["-o", "yaml"], "unknown output format `yaml`"),
        (["--timeout", "0"], "--timeout must be more than 0"),
    ],
)
def test_invalid_input_exits_3_without_connecting(args: list[str], message: str) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.2)
        port = listener.getsockname()[1]
        code, out, err = mcpctl(f"http://127.0.0.1:{port}/mcp", *args)
        assert code == 3
        assert message in err
        assert out == ""
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody knocked


def test_not_a_url_is_invalid_input() -> None:
    code, _, err = mcpctl("ftp://127.0.0.1/mcp")
    assert code == 3
    assert "is not an http(s) URL" in err


@pytest.mark.parametrize("other_url", ["notfound"], indirect=True)
def test_plain_http_server_is_not_mcp(other_url: str) -> None:
    code, out, err = mcpctl(other_url)
    assert code == 1
    assert "FAIL http  HTTP 404 Not Found: no MCP endpoint at this URL" in out
    assert "error: http: HTTP 404 Not Found" in err


@pytest.mark.parametrize("other_url", ["hang"], indirect=True)
def test_hanging_server_honours_timeout(other_url: str) -> None:
    start = time.monotonic()
    code, out, _ = mcpctl(other_url, "--timeout", "1", "-o", "json")
    elapsed = time.monotonic() - start
    assert code == 1
    assert 0.9 < elapsed < 4
    http = steps(out)["http"]
    assert http["ok"] is False
    assert http["detail"].endswith("within 1s")
    assert 900 < http["ms"] < 3000


def test_slow_tool_call_honours_timeout(demo_url: str) -> None:
    start = time.monotonic()
    code, out, _ = mcpctl(
        demo_url, "--call", "sleep", "--args", '{"seconds": 30}', "--timeout", "1"
    )
    assert code == 1
    assert time.monotonic() - start < 6
    assert "FAIL tools/call  no answer within 1s" in out


@pytest.mark.parametrize("other_url", ["sloppy"], indirect=True)
def test_tool_problems_are_reported_per_tool(other_url: str) -> None:
    code, out, _ = mcpctl(other_url, "--call", "fine", "-o", "json")
    assert code == 1
    by_name = steps(out)
    assert by_name["initialize"]["protocol_version"] == "2025-06-18"
    listing = by_name["tools/list"]
    assert listing["ok"] is False
    assert listing["count"] == 6
    assert listing["problems"] == [
        "`bad name!`: a name must be 1-128 characters of A-Z a-z 0-9 _ . -",
        '`not_object`: inputSchema must have type `object`, not "string"',
        "`no_schema`: inputSchema is missing or not a JSON object",
        "`fine`: duplicate name",
    ]
    assert listing["warnings"] == [
        "`has.dot`: some clients accept only 1-64 characters of A-Z a-z 0-9 _ -"
    ]
    assert by_name["tools/call"]["ok"] is True  # the run goes on past a bad listing


@pytest.mark.parametrize("other_url", ["lingering"], indirect=True)
def test_sse_stream_left_open_after_the_answer_is_fine(other_url: str) -> None:
    start = time.monotonic()
    code, out, _ = mcpctl(other_url, "--timeout", "3", "-o", "json")
    assert time.monotonic() - start < 3
    by_name = steps(out)
    assert by_name["http"]["detail"] == "HTTP 200 OK, text/event-stream"
    assert by_name["initialize"]["ok"] is True
    assert by_name["tools/list"]["count"] == 6
    assert code == 1  # the sloppy tool list


def test_third_party_server_mcp_server_time(time_url: str) -> None:
    args = ["--call", "get_current_time", "--args", '{"timezone": "UTC"}', "-o", "json"]
    code, out, err = mcpctl(time_url, *args)
    assert code == 0, err
    by_name = steps(out)
    assert by_name["initialize"]["server"]["name"] == "mcp-time"
    assert set(by_name["tools/list"]["tools"]) == {"get_current_time", "convert_time"}
    assert '"timezone": "UTC"' in by_name["tools/call"]["preview"]


def test_real_mcpctl_subprocess(demo_url: str, auth_url: str) -> None:
    exe = str(Path(sys.executable).with_name("mcpctl"))
    args = [exe, "test", "mcp", demo_url, "--call", "echo", "--args", '{"text": "hi"}']
    done = subprocess.run([*args, "-o", "json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert steps(done.stdout)["tools/call"]["preview"] == "hi"
    done = subprocess.run(
        [exe, "test", "mcp", auth_url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "the server needs a token: pass --token" in done.stderr


@pytest.mark.parametrize(
    ("tool", "problem", "warning"),
    [
        ({"name": "ok_name-1", "inputSchema": {"type": "object"}}, None, None),
        ({"name": "a" * 65, "inputSchema": {"type": "object"}}, None, "some clients accept only"),
        ({"name": "a" * 129, "inputSchema": {"type": "object"}}, "a name must be 1-128", None),
        ({"name": "", "inputSchema": {"type": "object"}}, "a name must be 1-128", None),
        ({"name": "x", "inputSchema": {"type": "object", "required": "a"}}, "required", None),
        ({"name": "x", "inputSchema": {"type": "object", "properties": []}}, "properties", None),
        ({"inputSchema": {"type": "object"}}, "tool #1: a name must be", None),
        ("just a string", "tool #1: not a JSON object", None),
    ],
)
def test_check_tools_table(tool: Any, problem: str | None, warning: str | None) -> None:
    listing = check_tools([tool])
    assert len(listing.problems) == (1 if problem else 0)
    assert len(listing.warnings) == (1 if warning else 0)
    if problem:
        assert problem in listing.problems[0]
    if warning:
        assert warning in listing.warnings[0]


def _raised_from(cause: BaseException) -> Exception:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise OSError("All connection attempts failed") from inner
    except OSError as outer:
        return outer


@pytest.mark.parametrize(
    ("cause", "reason"),
    [
        (ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)"), "connection refused"),
        (socket.gaierror(-2, "Name or service not known"), "name or service not known"),
        (ssl.SSLCertVerificationError(1, "[SSL] certificate verify failed"), "TLS error: "),
    ],
)
def test_connect_reason(cause: BaseException, reason: str) -> None:
    assert connect_reason(_raised_from(cause)).startswith(reason)
