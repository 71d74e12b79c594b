"""Every ``tools/call`` leaves exactly one audit record, whichever path served it, and none
is lost or doubled when mcplocal is killed (``kill -9``) or mcpd goes away and comes back.

Each call carries its own id (the JSON-RPC id through mcplocal, ``X-Request-Id`` on mcpd's
endpoint), which the record keeps as ``requestId``: records are counted per call.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.mcpd.test_instances import ADMIN, PASSWORD, Mcpd
from tests.mcplocal.conftest import MCPLOCAL, SERVICE_USER, Stack
from tests.mcplocal.test_fast_lanes import RawSession, counter
from tests.mcplocal.test_journey import start_http_upstream, token
from tests.replicas.cluster import BIN, ROOT
from tests.servers.launch import free_port

SDK_VERSION = "2025-06-18"  # not the upstream session's version: the SDK path answers
RELAY_VERSION = "2025-11-25"  # the upstream session's: the fast lane relays


def calls(m: Mcpd, **params: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    before = None
    while True:
        page = m.ok("GET", "/auditevents", params={"action": "call", "limit": 1000, **params}
                    | ({"before": before} if before else {}))  # fmt: skip
        items += page["items"]
        before = page.get("next")
        if not before:
            return items


def wait_for(m: Mcpd, want: set[str], timeout: float = 15.0) -> list[dict[str, Any]]:
    """The call records once every id in ``want`` has one (AssertionError after timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        got = calls(m)
        missing = want - {e["requestId"] for e in got}
        if not missing:
            return got
        assert time.monotonic() < deadline, f"no audit record of {sorted(missing)[:10]}"
        time.sleep(0.2)


def test_every_tools_call_leaves_exactly_one_record(stack: Stack) -> None:
    m = stack.mcpd
    port = free_port()
    up = start_http_upstream(port)
    try:
        m.server("alpha", {"transport": "http", "http": {"url": f"http://127.0.0.1:{port}/mcp"}})
        m.ok("POST", "/projects", json={"name": "p", "servers": ["alpha"]})
        runner = token(stack, "runner", "p", "role:run,resource:servers")
        denied = token(stack, "denied", "p", "role:view,resource:servers")
        dev = m.login("dev@example.com", "role:run,resource:servers")
        ids: dict[str, str] = {}  # request id -> the outcome it must have

        fast = RawSession(f"{stack.mcplocal}/mcp", runner, RELAY_VERSION)
        sdk = RawSession(f"{stack.mcplocal}/mcp", runner, SDK_VERSION)
        refused = RawSession(f"{stack.mcplocal}/mcp", denied, RELAY_VERSION)
        direct = RawSession(f"{m.base}/api/v1/servers/alpha/mcp", dev, RELAY_VERSION)
        direct_sdk = RawSession(f"{m.base}/api/v1/servers/alpha/mcp", dev, SDK_VERSION)
        try:

            def call(s: RawSession, name: str, rid: str, outcome: str, **args: Any) -> Any:
                s.next_id = 0
                s.headers["x-request-id"] = rid
                message = {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                           "params": {"name": name, "arguments": args}}  # fmt: skip
                r = s.post(message)
                ids[rid] = outcome
                return r

            relayed = counter(stack, "mcplocal_relayed_calls_total")
            deadline = time.monotonic() + 15
            n = 0
            # mcplocal, until its fast lane relays (the first calls may go the SDK way)
            while counter(stack, "mcplocal_relayed_calls_total") == relayed:
                n += 1
                call(fast, "alpha__add", f"fast-{n}", "allow", a=1, b=2)
                assert time.monotonic() < deadline
            call(fast, "alpha__fail", "fast-fail", "error")
            call(sdk, "alpha__add", "sdk-1", "allow", a=1, b=2)
            call(sdk, "alpha__fail", "sdk-fail", "error")
            call(refused, "alpha__add", "deny-1", "deny", a=1, b=2)
            call(sdk, "alpha__nope", "unknown-1", "deny")
            # mcpd's own endpoint: both its lanes, and a deny
            for i in range(3):
                call(direct, "add", f"mcpd-{i}", "allow", a=1, b=2)
            call(direct_sdk, "add", "mcpd-sdk", "allow", a=1, b=2)
            call(direct, "fail", "mcpd-fail", "error")
        finally:
            for s in (fast, sdk, refused, direct, direct_sdk):
                s.close()
        records = wait_for(m, set(ids))
        time.sleep(0.5)  # anything doubled would have arrived by now
        records = calls(m)
        per_call = Counter(e["requestId"] for e in records)
        assert {rid: n for rid, n in per_call.items() if n != 1} == {}
        assert set(per_call) == set(ids), "a record of a call nobody made (mcpd's proxied lane)"
        by_id = {e["requestId"]: e for e in records}
        assert {rid: by_id[rid]["outcome"] for rid in ids} == ids
        assert by_id["deny-1"]["tokenName"] == "denied"
        assert by_id["deny-1"]["detail"]["reason"]
        for rid in ("sdk-1", "fast-1", "mcpd-0", "mcpd-sdk"):  # the deciding line, and where
            assert by_id[rid]["detail"]["reason"].startswith("allowed by `p, "), rid
            assert "(db:rbac/" in by_id[rid]["detail"]["reason"], rid
        # the same policy state has the same revision in mcplocal's copy and in mcpd
        assert by_id["sdk-1"]["policyRevision"] == by_id["mcpd-0"]["policyRevision"]
        assert len({e["eventId"] for e in records}) == len(records)
        tokens = {t["name"]: t for t in m.ok("GET", "/mcptokens", params={"project": "p"})["items"]}
        assert tokens["runner"]["lastUsedAt"] and tokens["denied"]["lastUsedAt"]
    finally:
        up.kill()
        up.wait()


# -- crashes and outages, as real processes ----------------------------------------------


class Proc:
    """A restartable process on a fixed port: started, killed, started again."""

    def __init__(self, argv: list[str], env: dict[str, str], ready: str, log: Path) -> None:
        self.argv, self.env, self.ready, self.log = argv, env, ready, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            with suppress(httpx.TransportError):
                if httpx.get(self.ready, timeout=1).status_code == 200:
                    return
            assert time.monotonic() < deadline, self.log.read_text()[-3000:]
            time.sleep(0.05)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@contextmanager
def chaos_stack(
    tmp_path: Path, spool_max: int | None = None
) -> Iterator[tuple[Proc, Proc, Mcpd, str]]:
    """mcpd (SQLite) and a stateless mcplocal as real processes, an http upstream, and an
    McpToken that may run its tools: (mcpd, mcplocal, mcpd's API, the token)."""
    with ExitStack() as stack:
        up_port, mcpd_port, local_port = free_port(), free_port(), free_port()
        up = start_http_upstream(up_port)
        stack.callback(lambda: (up.kill(), up.wait()))
        base = f"http://127.0.0.1:{mcpd_port}"
        env = {
            **os.environ,
            "MCPD_DATABASE_URL": f"sqlite:///{tmp_path / 'mcpd.db'}",
            "MCPD_SECRETS_KEY_FILE": str(tmp_path / "secrets.key"),
            "MCPD_LOG_DIR": str(tmp_path / "logs"),
            "MCPD_BOOTSTRAP_ADMIN": ADMIN,
            "MCPD_BOOTSTRAP_PASSWORD": PASSWORD,
            "MCPD_INSTANCE_RETRY_FAILED_SECONDS": "0.5",
        }
        env.pop("MCPD_SECRETS_KEY", None)
        argv = [str(BIN / "mcpd"), "serve", "--host", "127.0.0.1", "--port", str(mcpd_port)]
        mcpd = Proc(argv, env, f"{base}/readyz", tmp_path / "mcpd.log")
        stack.callback(mcpd.kill, signal.SIGTERM)
        mcpd.start()
        admin = httpx.post(
            f"{base}/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD}
        ).json()["token"]
        m = Mcpd(base, admin, None)
        m.server("alpha", {"transport": "http", "http": {"url": f"http://127.0.0.1:{up_port}/mcp"}})
        m.ok("POST", "/projects", json={"name": "p", "servers": ["alpha"]})
        m.login(
            SERVICE_USER, "action:proxy", "role:run,resource:servers", "role:view,resource:projects"
        )
        body = {"name": "steady", "project": "p", "bindings": ["role:run,resource:servers"]}
        raw = m.ok("POST", "/mcptokens", json=body)["token"]
        local_env = {
            **os.environ,
            "MCPLOCAL_MCPD_URL": base,
            "MCPLOCAL_MCPD_USER": SERVICE_USER,
            "MCPLOCAL_MCPD_PASSWORD": PASSWORD,
            "MCPLOCAL_CACHE_DIR": str(tmp_path / "cache"),
            "MCPLOCAL_AUDIT_SPOOL_DIR": str(tmp_path / "audit"),
            "MCPLOCAL_STATELESS": "true",
            "MCPLOCAL_TOOLS_CACHE_NEGATIVE_TTL": "0.2",
        }
        if spool_max is not None:
            local_env["MCPLOCAL_AUDIT_SPOOL_MAX_BYTES"] = str(spool_max)
        local_argv = [str(MCPLOCAL), "serve", "--host", "127.0.0.1", "--port", str(local_port)]
        local_base = f"http://127.0.0.1:{local_port}"
        local = Proc(local_argv, local_env, f"{local_base}/readyz", tmp_path / "mcplocal.log")
        stack.callback(local.kill, signal.SIGTERM)
        local.start()
        yield mcpd, local, m, raw


class Stream:
    """Steady ``tools/call``s to a stateless mcplocal from ``n`` threads, each with its own
    id; remembers which got an answer (a result or an error, as a client sees it)."""

    def __init__(self, url: str, bearer: str, n: int = 3, tool: str = "alpha__add") -> None:
        self.url, self.bearer, self.tool = url, bearer, tool
        self.answered: set[str] = set()
        self.sent: set[str] = set()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(n)]
        self._lock = threading.Lock()

    def __enter__(self) -> Stream:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _run(self, worker: int) -> None:
        headers = {
            "Authorization": f"Bearer {self.bearer}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": RELAY_VERSION,
        }
        n = 0
        with httpx.Client(timeout=10) as http:
            while not self._stop.is_set():
                n += 1
                rid = f"w{worker}-{n}"
                params = {"name": self.tool, "arguments": {"a": 1, "b": n}}
                body = {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params}
                with self._lock:
                    self.sent.add(rid)
                try:
                    r = http.post(self.url, headers=headers, json=body)
                except httpx.TransportError:
                    time.sleep(0.05)  # mcplocal is down: this call got no answer
                    continue
                if r.status_code == 200 and f'"id":"{rid}"' in r.text.replace(" ", ""):
                    with self._lock:
                        self.answered.add(rid)
                else:
                    time.sleep(0.05)  # not ready (503) or refused: no call was made

    def count(self) -> int:
        with self._lock:
            return len(self.answered)


def wait_answers(stream: Stream, more: int, timeout: float = 20.0) -> None:
    target = stream.count() + more
    deadline = time.monotonic() + timeout
    while stream.count() < target:
        assert time.monotonic() < deadline, "the calls stopped being answered"
        time.sleep(0.05)


@pytest.mark.timeout(180)
def test_no_record_is_lost_or_doubled_across_a_kill_and_an_outage(tmp_path: Path) -> None:
    with chaos_stack(tmp_path) as (mcpd, local, m, raw):
        with Stream(f"{local.ready.removesuffix('/readyz')}/mcp", raw) as stream:
            wait_answers(stream, 30)
            local.kill(signal.SIGKILL)  # records spooled, some maybe not yet sent
            local.start()  # reads the spool, sends what mcpd has not committed
            wait_answers(stream, 30)
            mcpd.kill(signal.SIGKILL)  # mid-batch, maybe: mcplocal sends the batch again
            outage = stream.count()
            time.sleep(30.0)  # mcpd away 30 s (the outage): records wait, retried
            answered_in_outage = stream.count() - outage
            mcpd.start()
            wait_answers(stream, 30)
        answered, sent = set(stream.answered), set(stream.sent)
        assert answered_in_outage > 0, "calls during the outage are answered (as errors)"
        records = wait_for(m, answered, timeout=30)
        time.sleep(1.0)  # a resend that would double a record has arrived by now
        records = calls(m)
        per_call = Counter(e["requestId"] for e in records)
        assert {rid: n for rid, n in per_call.items() if n != 1} == {}, "a record doubled"
        assert answered <= set(per_call)
        # a record without an answer: only a call in flight when mcplocal was killed
        assert len(set(per_call) - answered) <= 3 and set(per_call) <= sent
        assert len({e["eventId"] for e in records}) == len(records)
        outcomes = Counter(e["outcome"] for e in records)
        assert outcomes["allow"] > 60 and outcomes["error"] > 0  # the outage's calls failed
        metrics = httpx.get(local.ready.replace("/readyz", "/metrics")).text
        assert "mcplocal_audit_spool_full 0.0" in metrics


@pytest.mark.timeout(120)
def test_a_full_spool_refuses_calls_and_says_so_until_mcpd_takes_its_records(
    tmp_path: Path,
) -> None:
    with chaos_stack(tmp_path, spool_max=64 * 1024) as (mcpd, local, m, raw):
        base = local.ready.removesuffix("/readyz")
        headers = {
            "Authorization": f"Bearer {raw}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": RELAY_VERSION,
        }
        answered: set[str] = set()
        mcpd.kill(signal.SIGKILL)  # calls are answered (as errors) and their records wait
        refusal = ""
        with httpx.Client(timeout=10) as http:
            for i in range(2000):
                rid = f"full-{i}"
                params = {"name": "alpha__add", "arguments": {"a": 1, "b": i}}
                body = {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params}
                r = http.post(f"{base}/mcp", headers=headers, json=body)
                assert r.status_code == 200, r.text
                if "cannot audit this call" in r.text:
                    refusal = r.text
                    break
                answered.add(rid)
            assert refusal, "the spool never filled"
            assert "MCPLOCAL_AUDIT_SPOOL_MAX_BYTES" in refusal
            ready = http.get(f"{base}/readyz")
            assert ready.status_code == 503 and "is full" in ready.json()["auditSpool"]
            assert "mcplocal_audit_spool_full 1.0" in http.get(f"{base}/metrics").text
            assert "mcplocal_audit_refused_calls 1.0" in http.get(f"{base}/metrics").text
            mcpd.start()  # the records go, the spool empties, calls are taken again
            deadline = time.monotonic() + 30
            while http.get(f"{base}/readyz").status_code != 200:
                assert time.monotonic() < deadline, http.get(f"{base}/readyz").text
                time.sleep(0.2)
        records = wait_for(m, answered)
        per_call = Counter(e["requestId"] for e in records)
        assert set(per_call) == answered and set(per_call.values()) == {1}
        assert len(answered) > 50  # 64 KiB of records, each under a kilobyte
