"""How a decision table's result reads: a summary line, then each failed case as a diff."""

from __future__ import annotations

from authz.decision_table.model import CaseResult, TableResult

__all__ = ["format_case_result", "format_result"]


def format_case_result(result: CaseResult) -> str:
    """A failed case as a small diff: what the table expects (-) and what happened (+)."""
    case = result.case
    status = "ok" if result.passed else "FAIL"
    want = case.expect + (f", reason containing `{case.reason}`" if case.reason else "")
    lines = [
        f"{status} {case.source} {case.label}: {case.request()}",
        f"  - expected: {want}",
        f"  + actual:   {result.actual}, {result.decision.reason}",
    ]
    lines.extend(f"    {p}" for p in result.problems)
    return "\n".join(lines)


def format_result(result: TableResult) -> str:
    """A summary line, then every failed case."""
    failed = len(result.failures)
    total = len(result.results)
    head = f"{result.table.path}: {total} cases, {total - failed} passed, {failed} failed"
    return "\n".join([head, *(format_case_result(r) for r in result.failures)])
