"""OAuth benchmark: what an OAuth access token costs at mcplocal beside a static McpToken,
how long the whole code flow takes, and how soon a revoked grant is refused.

    .venv/bin/python bench/oauth.py [--quick] [--calls N]

Starts mcpd (in this process, real HTTP on loopback, SQLite) and ``mcplocal serve`` (a real
process), with a stdio MCP server. Then, in one run:

* ``flow``: register, authorize, sign in, consent, exchange (httpx as the browser), per grant;
* ``static`` / ``oauth``: an MCP ``initialize`` POST to mcplocal with a static McpToken and
  with an OAuth access token (introspection remembered), interleaved, with mcplocal's CPU
  time per request (from /proc) for each;
* ``revoke``: ``DELETE /api/v1/oauthgrants/NAME`` by the user, to mcplocal's first 401.

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import httpx  # noqa: E402

from tests.mcpd.test_instances import PASSWORD, ROOT, make_settings, serve_mcpd, stdio_spec  # noqa: E402
from tests.mcplocal.conftest import MCPLOCAL, SERVICE_USER, mcplocal_env  # noqa: E402
from tests.oauth.conftest import DEV, DEV_BINDINGS  # noqa: E402
from tests.oauth.flow import Flow  # noqa: E402
from tests.replicas.cluster import process  # noqa: E402
from tests.servers.launch import free_port  # noqa: E402

INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "b"}},
}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
TICK = os.sysconf("SC_CLK_TCK")


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args()
    calls, grants = (20, 3) if args.quick else (args.calls, 10)
    os.chdir(ROOT)
    tmp = Path(tempfile.mkdtemp(prefix="bench-oauth-"))
    mcpd_port, local_port = free_port(), free_port()
    local = f"http://127.0.0.1:{local_port}"
    settings = make_settings(
        f"sqlite:///{tmp / 'mcpd.db'}",
        tmp,
        public_url=f"http://127.0.0.1:{mcpd_port}",
        oauth_resources=f"{local}/mcp",
        oauth_registrations_per_minute=10_000,
    )
    with serve_mcpd(settings, mcpd_port) as m:
        m.server("demo", stdio_spec("demo"))
        m.ok("POST", "/projects", json={"name": "web", "servers": ["demo"]})
        service = m.login(SERVICE_USER, "action:proxy", "role:run,resource:servers")
        dev = m.login(DEV, *DEV_BINDINGS)
        static = m.ok(
            "POST",
            "/mcptokens",
            json={"name": "s", "project": "web", "bindings": ["role:run,resource:servers"]},
        )["token"]
        argv = [str(MCPLOCAL), "serve", "--host", "127.0.0.1", "--port", str(local_port)]
        env = mcplocal_env(m, service, tmp)
        with process(argv, env, f"{local}/readyz", tmp / "mcplocal.log") as pid:
            flow_ms, tokens = [], []
            for _ in range(grants):
                f = Flow(m.base, f"{local}/mcp")
                began = time.perf_counter()
                f.register()
                r = f.exchange(f.code(DEV, PASSWORD, "web"))
                flow_ms.append((time.perf_counter() - began) * 1000)
                tokens.append(r.json()["access_token"])
                f.close()
            say(f"flow: {statistics.median(flow_ms):.1f} ms p50 over {grants}")
            with httpx.Client(timeout=30) as http:

                def call(bearer: str) -> float:
                    headers = {**HEADERS, "Authorization": f"Bearer {bearer}"}
                    began = time.perf_counter()
                    r = http.post(f"{local}/mcp", json=INIT, headers=headers)
                    assert r.status_code == 200, r.text
                    return (time.perf_counter() - began) * 1000

                first_oauth = call(tokens[0])  # introspected at mcpd
                call(static)
                lat: dict[str, list[float]] = {"static": [], "oauth": []}
                cpu = {"static": 0.0, "oauth": 0.0}
                for i in range(calls):
                    for kind, bearer in (("static", static), ("oauth", tokens[0])):
                        before = cpu_s(pid)
                        lat[kind].append(call(bearer))
                        cpu[kind] += cpu_s(pid) - before
                    if i % 100 == 0:
                        say(f"calls {i}/{calls}")
                revoke_ms = []
                names = [g["name"] for g in m.ok("GET", "/oauthgrants", bearer=dev)["items"]]
                for name, token in list(zip(names, tokens, strict=True))[1:]:
                    headers = {**HEADERS, "Authorization": f"Bearer {token}"}
                    assert http.post(f"{local}/mcp", json=INIT, headers=headers).status_code == 200
                    began = time.perf_counter()
                    m.ok("DELETE", f"/oauthgrants/{name}", bearer=dev)
                    while http.post(f"{local}/mcp", json=INIT, headers=headers).status_code != 401:
                        assert time.perf_counter() - began < 10, "never refused"
                        time.sleep(0.002)
                    revoke_ms.append((time.perf_counter() - began) * 1000)
    result = {
        "flow_p50_ms": pct(flow_ms, 0.5),
        "static_p50_ms": pct(lat["static"], 0.5),
        "oauth_p50_ms": pct(lat["oauth"], 0.5),
        "static_p99_ms": pct(lat["static"], 0.99),
        "oauth_p99_ms": pct(lat["oauth"], 0.99),
        "oauth_first_call_ms": round(first_oauth, 2),
        "static_cpu_ms_per_request": round(cpu["static"] * 1000 / calls, 3),
        "oauth_cpu_ms_per_request": round(cpu["oauth"] * 1000 / calls, 3),
        "oauth_over_static_p50": round(pct(lat["oauth"], 0.5) / pct(lat["static"], 0.5), 3),
        "revoke_p50_ms": pct(revoke_ms, 0.5),
        "revoke_max_ms": round(max(revoke_ms), 2),
        "calls": calls,
        "load_avg_1m": os.getloadavg()[0],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
