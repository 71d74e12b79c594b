"""Smoke test: ``bench/mcpd.py --quick`` runs on both databases and ends with its JSON line."""

from __future__ import annotations

import pytest

from tests.bench import quick_report


@pytest.mark.postgres
@pytest.mark.timeout(180)
def test_mcpd_bench_quick_prints_its_report() -> None:
    report = quick_report("mcpd.py", timeout=170)
    assert set(report) == {"results"}
    seen = set()
    for row in report["results"]:
        assert set(row) == {"db", "op", "rps", "p50_ms", "p99_ms", "cpu_ms_per_req"}
        assert row["db"] in ("sqlite", "postgresql")
        assert row["op"] in ("get", "create")
        for key in ("rps", "p50_ms", "p99_ms"):
            assert isinstance(row[key], float), (key, row)
            assert row[key] > 0, (key, row)
        assert isinstance(row["cpu_ms_per_req"], float), row  # clock ticks: 0.0 on a quick run
        seen.add((row["db"], row["op"]))
    assert seen == {(db, op) for db in ("sqlite", "postgresql") for op in ("get", "create")}
    assert len(report["results"]) == 4
