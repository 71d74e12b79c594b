"""Issue 13's boundaries, against ``mcpd serve`` as a real process over real HTTP: the login
limit is not dodged with X-Forwarded-For, bodies are capped before they are read (the RSS
of the process says so), deep JSON is a 400, and one subject's open MCP sessions are capped."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpd.bodylimit import json_too_deep
from tests.mcpd.test_instances import ADMIN, PASSWORD, Mcpd, stdio_spec
from tests.replicas.cluster import process
from tests.servers.launch import free_port

MCPD = Path(sys.executable).with_name("mcpd")
MIB = 1024 * 1024
DEEP = b"[" * 100_000 + b"]" * 100_000
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "bounds", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


class Served(Mcpd):
    pid: int = 0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    work = tmp_path_factory.mktemp("bounds")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "MCPD_DATABASE_URL": f"sqlite:///{work / 'mcpd.db'}",
        "MCPD_SECRETS_KEY_FILE": str(work / "secrets.key"),
        "MCPD_LOG_DIR": str(work / "logs"),
        "MCPD_BOOTSTRAP_ADMIN": ADMIN,
        "MCPD_BOOTSTRAP_PASSWORD": PASSWORD,
        "MCPD_LOGIN_ATTEMPTS_PER_MINUTE": "3",
        "MCPD_MAX_MCP_SESSIONS_PER_SUBJECT": "2",
        "MCPD_BODY_READ_TIMEOUT": "2",
    }
    env.pop("MCPD_SECRETS_KEY", None)
    env.pop("FORWARDED_ALLOW_IPS", None)
    argv = [str(MCPD), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with process(argv, env, f"{base}/readyz", work / "mcpd.log") as pid:
        r = httpx.post(f"{base}/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD})
        assert r.status_code == 200, r.text
        s = Served(base, r.json()["token"], None)
        s.pid = pid
        yield s


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_rotating_x_forwarded_for_does_not_dodge_the_login_limit(served: Served) -> None:
    codes = []
    for i in range(5):
        r = httpx.post(
            f"{served.base}/api/v1/auth/login",
            json={"username": "victim", "password": "wrong password"},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
        )
        codes.append(r.status_code)
    assert codes == [401, 401, 401, 429, 429]
    events = served.ok("GET", "/auditevents", params={"action": "login", "outcome": "deny"})
    addresses = {e["detail"]["address"] for e in events["items"] if e["name"] == "victim"}
    assert addresses == {"127.0.0.1"}  # the peer, not what the header claimed


def _raw_post(base: str, path: str, headers: str, chunks: Iterator[bytes]) -> bytes:
    """Send a request by hand (so the test, not a client library, decides how much body
    goes out); stop sending once the server answers or closes; return what it said."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n".encode())
        sock.setblocking(False)
        answer = b""
        for chunk in chunks:
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            except OSError:
                break
            if answer:
                break
            try:
                sock.setblocking(True)
                sock.sendall(chunk)
                sock.setblocking(False)
            except OSError:
                break
        sock.setblocking(True)
        sock.settimeout(10)
        try:
            while not _whole(answer):
                got = sock.recv(65536)
                if not got:
                    break
                answer += got
        except OSError:
            pass
        return answer


def _whole(answer: bytes) -> bool:
    """True once the head and as much body as its Content-Length says have arrived (the
    body can come in a later segment than the head)."""
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


def _zeros(total: int, size: int = MIB) -> Iterator[bytes]:
    for _ in range(total // size):
        yield b"0" * size


def _chunked(total: int, size: int = MIB) -> Iterator[bytes]:
    for block in _zeros(total, size):
        yield f"{len(block):x}\r\n".encode() + block + b"\r\n"
    yield b"0\r\n\r\n"


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/api/v1/servers/x/mcp", "/api/v1/restore"])
def test_a_200_mib_unauthenticated_body_is_refused_without_growing_mcpd(
    served: Served, path: str
) -> None:
    before = rss_kib(served.pid)
    declared = _raw_post(
        served.base,
        path,
        f"Content-Type: application/json\r\nContent-Length: {200 * MIB}\r\n",
        _zeros(200 * MIB),
    )
    assert declared.startswith(b"HTTP/1.1 413"), declared[:300]
    streamed = _raw_post(
        served.base,
        path,
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
        _chunked(200 * MIB),
    )
    assert streamed.startswith(b"HTTP/1.1 413"), streamed[:300]
    assert b"the request body is over" in streamed
    grown = (rss_kib(served.pid) - before) / 1024
    assert grown < 50, f"mcpd's RSS grew {grown:.0f} MB"
    assert httpx.get(f"{served.base}/healthz").status_code == 200


def test_bodies_under_the_cap_still_work(served: Served) -> None:
    # a 900 KiB description is under the default 1 MiB cap: validated by the route, not refused
    r = served.call("POST", "/projects", json={"name": "big", "description": "x" * 900_000})
    assert r.status_code in (201, 422), r.text
    assert r.status_code != 413


def test_a_body_that_does_not_arrive_in_time_is_408(served: Served) -> None:
    host, port = served.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            f"POST /api/v1/auth/login HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode()
        )
        began = time.monotonic()
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - began < 20


@pytest.mark.parametrize(
    "path", ["/api/v1/auth/login", "/api/v1/projects", "/api/v1/servers/x/mcp", "/api/v1/restore"]
)
def test_deeply_nested_json_is_400(served: Served, path: str) -> None:
    for bearer in (None, served.admin):
        headers = {**MCP_HEADERS, **({"Authorization": f"Bearer {bearer}"} if bearer else {})}
        r = httpx.post(f"{served.base}{path}", content=DEEP, headers=headers, timeout=30)
        assert r.status_code == 400, (path, r.status_code, r.text[:300])
        assert "nested deeper than 256 levels" in r.json()["detail"]


def test_the_depth_check_counts_only_real_nesting() -> None:
    assert json_too_deep(DEEP, 256)
    assert not json_too_deep(b'{"a": "' + b"[" * 10_000 + b'"}', 256)  # inside a string
    assert not json_too_deep(b"[" + b"[1]," * 10_000 + b"[1]]", 256)  # wide, not deep
    assert json_too_deep(b'{"a": "\\"' + b"[" * 300 + b"]" * 300 + b'"}' + b"[" * 300, 256)


_TEXT = st.text(alphabet=st.sampled_from('[]{}"\\ab\n\u00e9'), max_size=8)
_JSON = st.recursive(
    st.none() | st.integers() | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=30,
)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(_JSON, st.integers(min_value=0, max_value=6), st.booleans())
def test_the_depth_check_agrees_with_the_parser(value: object, limit: int, ascii: bool) -> None:
    """Brackets, quotes and backslashes inside strings (escaped as JSON escapes them, or
    not at all for non-ASCII) never count; every real level does."""
    body = json.dumps(value, ensure_ascii=ascii).encode()
    assert json_too_deep(body, limit) == (_depth(value) > limit)


def test_one_subjects_open_mcp_sessions_are_capped(served: Served) -> None:
    served.server("capped", stdio_spec("demo"))
    url = f"{served.base}/api/v1/servers/capped/mcp"
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {served.admin}"}
    sessions: list[str] = []

    def of(sid: str) -> dict[str, str]:
        return {**headers, "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"}

    with httpx.Client(timeout=30) as http:
        for _ in range(2):
            r = http.post(url, json=INIT, headers=headers)
            assert r.status_code == 200, r.text
            sessions.append(r.headers["mcp-session-id"])
        refused = http.post(url, json=INIT, headers=headers)
        assert refused.status_code == 429, refused.text
        assert "already holds 2 open MCP sessions" in refused.json()["detail"]
        # a session already open still answers
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        r = http.post(url, json=ping, headers=of(sessions[0]))
        assert r.status_code == 200, r.text
        # closing one makes room for another
        r = http.delete(url, headers=of(sessions[0]))
        assert r.status_code == 200, r.text
        assert http.post(url, json=INIT, headers=headers).status_code == 200
