"""tests/servers/mcp_http.py servers as real processes on loopback, for any test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_http(
    kind: str, port: int, *, token: str | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start one; return once it accepts connections (``hang`` never answers, so no more is
    asked). Its output goes to ``log`` (a temporary file if not given), shown if it fails.
    ``kind`` ``conformance``: tests/servers/conformance_server.py."""
    if kind == "conformance":
        cmd = [sys.executable, "-m", "tests.servers.conformance_server", "--port", str(port)]
    else:
        cmd = [sys.executable, "-m", "tests.servers.mcp_http", "--kind", kind, "--port", str(port)]
    cmd += ["--token", token] if token else []
    log = log or Path(tempfile.mkstemp(prefix=f"mcp-http-{kind}-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return proc
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"{kind} server did not start:\n{log.read_text()}")
        time.sleep(0.05)


@contextmanager
def http_server(
    kind: str, port: int | None = None, *, token: str | None = None, log: Path | None = None
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """:func:`start_http` on ``port`` (a free one if None): yields (port, process); always
    stopped (SIGTERM, then SIGKILL)."""
    port = port or free_port()
    proc = start_http(kind, port, token=token, log=log)
    try:
        yield port, proc
    finally:
        stop(proc)


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    """Return once ``GET url`` answers 200 (e.g. mcpd's ``/readyz``); fail the test with
    ``log`` if the process exits first or ``timeout`` passes."""
    import httpx
    import pytest

    deadline = time.monotonic() + timeout
    while True:
        with suppress(httpx.TransportError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{url} never answered: {log.read_text()}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, SIGKILL after 10 s; then whatever is left in its process group, if it
    leads one (started with ``start_new_session``)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    with suppress(ProcessLookupError, PermissionError):
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGKILL)
