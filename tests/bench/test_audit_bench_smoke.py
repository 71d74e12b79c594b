"""Smoke test: ``bench/audit.py --quick`` runs and ends with its JSON report line."""

from __future__ import annotations

import pytest

from tests.bench import quick_report


@pytest.mark.timeout(180)
def test_audit_bench_quick_prints_its_report() -> None:
    report = quick_report("audit.py", timeout=170)
    assert set(report) == {"results", "doubled"}
    assert report["doubled"] == 0
    assert [row["fsync"] for row in report["results"]] == [True, False]
    for row in report["results"]:
        assert row["ingested_per_s"] > 0 and row["max_per_s"] > 0
        assert 0 < row["delay_p50_ms"] <= row["delay_p99_ms"]
        assert 0 < row["report_p50_ms"] <= row["report_p99_ms"]
        assert 0 < row["fsync_per_record"] <= 1  # grouped: at most one fsync a record
        assert 100 < row["spool_bytes_per_record"] < 2000
        assert row["cpu_ms_per_record"] > 0
