"""Smoke test: ``bench/proxy.py --quick`` runs and ends with its JSON report line."""

from __future__ import annotations

import pytest

from tests.bench import quick_report


@pytest.mark.timeout(240)
def test_proxy_bench_quick_prints_its_report() -> None:
    report = quick_report("proxy.py", timeout=230)
    assert set(report) == {
        "results", "list_cached_p50_ms", "list_mcpd_p50_ms", "list_sdk_client_p50_ms",
        "mcplocal_rss_mb", "sessions",
    }  # fmt: skip
    assert [row["path"] for row in report["results"]] == ["direct", "mcpd", "mcplocal"]
    assert report["sessions"] == 20 and report["mcplocal_rss_mb"] > 0
    for row in report["results"]:
        assert set(row) == {"path", "p50_ms", "p99_ms", "rps_16", "cpu_ms_per_call"}
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["cpu_ms_per_call"] > 0  # the serving processes did work for the calls
        assert row["rps_16"] > 0
    assert report["list_cached_p50_ms"] > 0
