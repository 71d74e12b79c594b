"""Smoke test: ``bench/proxy.py --quick`` runs and ends with its JSON report line."""

from __future__ import annotations

import pytest

from tests.bench import quick_report


@pytest.mark.timeout(240)
def test_proxy_bench_quick_prints_its_report() -> None:
    report = quick_report("proxy.py", timeout=230)
    assert set(report) == {
        "results", "added_seq_p50_ms", "floor", "list_cached_p50_ms", "list_mcpd_p50_ms",
        "list_sdk_client_p50_ms", "mcplocal_rss_mb", "sessions",
    }  # fmt: skip
    paths = [row["path"] for row in report["results"]]
    floor = ["nginx", "nginx_raw"] if report["floor"] == "nginx" else []
    assert floor or report["floor"].startswith("skipped")
    assert paths == [
        "direct", "direct_raw", *floor, "pyfloor", "pyfloor_raw", "mcpd", "mcpd_raw",
        "mcplocal", "mcplocal_raw",
        "stdio_direct", "stdio_direct_raw", "stdio_mcpd", "stdio_mcpd_raw",
    ]  # fmt: skip
    assert report["sessions"] == 20 and report["mcplocal_rss_mb"] > 0
    for row in report["results"]:
        assert set(row) == {
            "path", "p50_ms", "p99_ms", "rps_16", "cpu_ms_per_call", "seq_p50_ms", "seq_p99_ms",
            "cpu_by_process_ms_per_call",
        }  # fmt: skip
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert 0 < row["seq_p50_ms"] <= row["seq_p99_ms"]
        # the serving processes did work for the calls (a tick is 10 ms: a few calls of
        # the floors' may not show)
        assert row["cpu_ms_per_call"] > 0 or row["path"].startswith(("nginx", "pyfloor"))
        assert row["rps_16"] > 0
        assert "client" in row["cpu_by_process_ms_per_call"]
    assert set(report["added_seq_p50_ms"]) >= {"mcpd", "stdio_mcpd", "stdio_mcpd_raw"}
    assert report["list_cached_p50_ms"] > 0
