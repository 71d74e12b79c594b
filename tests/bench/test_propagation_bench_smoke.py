"""Smoke test: ``bench/propagation.py --quick`` runs on the real PostgreSQL and ends with its
JSON report line."""

from __future__ import annotations

import pytest

from tests.bench import quick_report


@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_propagation_bench_quick_prints_its_report() -> None:
    report = quick_report("propagation.py", timeout=230)
    assert set(report) == {"revoke_p50_ms", "revoke_p99_ms", "bind_p50_ms", "bind_p99_ms"}
    assert 0 < report["revoke_p50_ms"] <= report["revoke_p99_ms"]
    assert 0 < report["bind_p50_ms"] <= report["bind_p99_ms"]
