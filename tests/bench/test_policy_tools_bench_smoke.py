"""Smoke test: ``bench/policy_tools.py --quick`` runs and ends with its JSON report line."""

from __future__ import annotations

import pytest

from tests.bench import quick_report


@pytest.mark.timeout(180)
def test_policy_tools_bench_quick_prints_its_report() -> None:
    report = quick_report("policy_tools.py", timeout=170)
    timings = (
        "load_s",
        "who_can_s",
        "who_can_cli_s",
        "can_i_list_s",
        "diff_s",
        "lint_s",
        "test_s",
        "test_shipped_s",
    )
    assert set(report) == {"policy_lines", "users", "targets", "cpu", *timings}
    for key in timings:
        assert isinstance(report[key], float), key
    assert set(report["cpu"]) == set(timings) - {"who_can_cli_s"}
    assert all(isinstance(v, float) for v in report["cpu"].values())
    assert isinstance(report["policy_lines"], int) and isinstance(report["users"], int)
    assert set(report["targets"]) == {"who_can_s", "can_i_list_s", "diff_s", "lint_s", "test_s"}
