"""Smoke test: ``bench/propagation.py --quick`` runs on the real PostgreSQL and ends with its
JSON report line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "propagation.py"


@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_propagation_bench_quick_prints_its_report() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=230,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(report) == {"revoke_p50_ms", "revoke_p99_ms", "bind_p50_ms", "bind_p99_ms"}
    assert 0 < report["revoke_p50_ms"] <= report["revoke_p99_ms"]
    assert 0 < report["bind_p50_ms"] <= report["bind_p99_ms"]
