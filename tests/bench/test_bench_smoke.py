"""Smoke test: ``bench/authz.py --quick`` runs and ends with its JSON report line."""

from __future__ import annotations

import pytest

from tests.bench import quick_report


@pytest.mark.timeout(120)
def test_bench_quick_prints_its_report() -> None:
    report = quick_report("authz.py", timeout=110)
    assert set(report) == {"results", "load_100k_s", "load_100k_cpu_s", "update_ms"}
    assert isinstance(report["load_100k_s"], float)
    assert isinstance(report["load_100k_cpu_s"], float)
    assert isinstance(report["update_ms"], float)
    assert report["results"]
    engines = set()
    for row in report["results"]:
        fast = row["engine"] == "fast"
        assert set(row) == {"engine", "policy_lines", "users", "p50_us", "p99_us"} | (
            {"cpu_us", "p50_cpu_us", "p99_cpu_us"} if fast else set()
        )
        assert row["engine"] in ("fast", "reference")
        assert not fast or isinstance(row["cpu_us"], float)
        assert not fast or 0 < row["p50_cpu_us"] <= row["p99_cpu_us"]
        assert isinstance(row["policy_lines"], int)
        assert isinstance(row["users"], int)
        assert isinstance(row["p50_us"], float)
        assert isinstance(row["p99_us"], float)
        engines.add(row["engine"])
    assert engines == {"fast", "reference"}
