"""The official MCP server conformance suite (npm ``@modelcontextprotocol/conformance``, pinned
in scripts/ensure-node-tools.sh) against tests/servers/conformance_server.py:

* ``direct``: the reference server itself (every active scenario passes);
* ``mcpd``: through mcpd's per-server endpoint (an http server pointing at it);
* ``mcplocal``: through ``mcplocal serve`` (a one-server project), as the suite sees it;
* ``mcplocal-mapped``: the same through the name-mapping wrapper (preload.mjs puts the
  ``<server>__`` prefix on the names the suite sends and takes it off the answers).

Each scenario's verdict (every check of it SUCCESS, WARNING or INFO) is compared with
expected.json: a scenario that passed there and fails now fails the test; one that passes
now and did not is reported, to be recorded with ``CONFORMANCE_RECORD=1``.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mcplocal.conftest import Stack
from tests.mcplocal.test_journey import token
from tests.servers.launch import ROOT, http_server

NODE = ROOT / ".tools/node22/node_modules/node/bin/node"
MODULES = ROOT / ".tools/npm/node_modules"
SUITE = MODULES / "@modelcontextprotocol/conformance/dist/index.js"
PRELOAD = Path(__file__).with_name("preload.mjs")
EXPECTED = Path(__file__).with_name("expected.json")
SERVER = "conf"

pytestmark = [
    pytest.mark.skipif(
        not (NODE.exists() and SUITE.exists()),
        reason="the conformance suite is not installed (scripts/ensure-node-tools.sh)",
    ),
    pytest.mark.timeout(300),
]


def run_suite(url: str, tmp: Path, *, bearer: str = "", prefix: str = "") -> dict[str, bool]:
    """Every active scenario's verdict against ``url`` (True: passed)."""
    out = tmp / f"results-{len(list(tmp.glob('results-*')))}"
    env = {
        **os.environ,
        "PATH": f"{NODE.parent}:{os.environ.get('PATH', '')}",
        "CONFORMANCE_NODE_MODULES": str(MODULES),
        "CONFORMANCE_BEARER": bearer,
        "CONFORMANCE_NAME_PREFIX": prefix,
    }
    argv = [str(NODE), "--import", str(PRELOAD), str(SUITE), "server", "--url", url]
    done = subprocess.run(
        [*argv, "-o", str(out)], env=env, cwd=tmp, capture_output=True, text=True, timeout=240
    )
    verdicts: dict[str, bool] = {}
    for checks in sorted(out.glob("server-*/checks.json")):
        scenario = checks.parent.name.removeprefix("server-").rsplit("-", 6)[0]
        statuses = [c["status"] for c in json.loads(checks.read_text())]
        verdicts[scenario] = bool(statuses) and "FAILURE" not in statuses
    assert verdicts, f"the suite ran no scenario:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return verdicts


def compare(path: str, got: dict[str, bool]) -> None:
    expected = json.loads(EXPECTED.read_text()) if EXPECTED.exists() else {}
    if os.environ.get("CONFORMANCE_RECORD"):
        expected[path] = dict(sorted(got.items()))
        EXPECTED.write_text(json.dumps(expected, indent=2) + "\n")
    was = expected.get(path, {})
    regressed = sorted(s for s, ok in was.items() if ok and not got.get(s, False))
    improved = sorted(s for s, ok in got.items() if ok and not was.get(s, False))
    print(f"{path}: {sum(got.values())}/{len(got)} passed; newly passing: {improved}")
    assert not regressed, f"{path}: scenarios that passed before fail now: {regressed}"
    assert set(got) >= set(was), f"{path}: scenarios missing: {sorted(set(was) - set(got))}"


@pytest.fixture
def reference() -> Iterator[int]:
    with http_server("conformance") as (port, _):
        yield port


def test_directly(reference: int, tmp_path: Path) -> None:
    got = run_suite(f"http://127.0.0.1:{reference}/mcp", tmp_path)
    assert all(got.values()), [s for s, ok in got.items() if not ok]
    compare("direct", got)


def test_through_mcpd_and_mcplocal(reference: int, stack: Stack, tmp_path: Path) -> None:
    m = stack.mcpd
    m.server(SERVER, {"transport": "http", "http": {"url": f"http://127.0.0.1:{reference}/mcp"}})
    compare("mcpd", run_suite(f"{m.base}/api/v1/servers/{SERVER}/mcp", tmp_path, bearer=m.admin))

    m.ok("POST", "/projects", json={"name": "conformance", "servers": [SERVER]})
    bearer = token(stack, "conformance", "conformance", "role:run,resource:servers")
    url = f"{stack.mcplocal}/mcp"
    compare("mcplocal", run_suite(url, tmp_path, bearer=bearer))
    compare("mcplocal-mapped", run_suite(url, tmp_path, bearer=bearer, prefix=f"{SERVER}__"))
