"""Propagation benchmark: how long a change made through one replica takes to be enforced
by another, over 100 trials each.

    .venv/bin/python bench/propagation.py [--quick] [--trials N]

Starts two ``mcpd serve`` replicas on one fresh database of the local PostgreSQL
(127.0.0.1:5432) and two stateless ``mcplocal serve`` replicas, each following one mcpd
(tests/replicas/cluster.py), all on loopback. Then:

* ``revoke``: a token that works through mcplocal B is revoked through mcpd A; the time
  until mcplocal B answers 401 (polled every 2 ms);
* ``bind``: an RbacDefinition is created through mcpd A; the time until mcpd B's
  ``can-i`` says yes (polled every 2 ms).

Progress goes to stderr; the last line of stdout is one JSON object::

    {"revoke_p50_ms": a, "revoke_p99_ms": b, "bind_p50_ms": c, "bind_p99_ms": d}

``--quick`` runs 3 trials of each (for the smoke test); its numbers mean little.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from tests.replicas.cluster import Cluster, cluster, wait_until  # noqa: E402

TIMEOUT_S = 10.0  # a trial that takes longer fails the run


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def revoke_trial(c: Cluster, i: int) -> float:
    token = c.api(
        0,
        "POST",
        "/mcptokens",
        json={"name": f"r{i}", "project": "bench", "bindings": ["role:run,resource:servers"]},
    )["token"]
    wait_until(lambda: c.mcp(1, token, "ping").status_code == 200, TIMEOUT_S)
    began = time.monotonic()  # from sending the revoke (commit included) to enforcement
    c.api(0, "POST", f"/mcptokens/r{i}/revoke")
    wait_until(lambda: c.mcp(1, token, "ping").status_code == 401, TIMEOUT_S)
    return (time.monotonic() - began) * 1000


def bind_trial(c: Cluster, i: int) -> float:
    user = f"u{i}@example.com"
    c.api(0, "POST", "/users", json={"name": user, "password": "bench-password-1"})
    began = time.monotonic()
    c.api(0, "POST", "/rbac", json={"name": f"b{i}", "subjects": [f"User:{user}"],
                                    "roleBindings": ["role:edit,resource:secrets"]})  # fmt: skip
    wait_until(lambda: c.can(1, f"User:{user}", "delete", "secrets", "x"), TIMEOUT_S)
    return (time.monotonic() - began) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 trials: a smoke test")
    parser.add_argument("--trials", type=int, default=100)
    args = parser.parse_args()
    trials = 3 if args.quick else args.trials
    with tempfile.TemporaryDirectory(prefix="bench-propagation-") as tmp, cluster(Path(tmp)) as c:
        c.api(0, "POST", "/projects", json={"name": "bench"})
        say(f"propagation bench: {trials} revoke trials (A -> mcplocal B)")
        revoke = [revoke_trial(c, i) for i in range(trials)]
        say(f"propagation bench: {trials} bind trials (A -> mcpd B)")
        bind = [bind_trial(c, i) for i in range(trials)]
    result = {
        "revoke_p50_ms": round(statistics.median(revoke), 2),
        "revoke_p99_ms": pct(revoke, 0.99),
        "bind_p50_ms": round(statistics.median(bind), 2),
        "bind_p99_ms": pct(bind, 0.99),
    }
    say(f"  {result}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
