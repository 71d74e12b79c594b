"""``mcpctl policy test``: decision tables as text, JSON or JUnit XML, with line coverage."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from xml.etree import ElementTree as ET

import typer

from authz import Authorizer
from authz.coverage import Coverage, coverage
from authz.decision_table import TableResult, format_result, load_table
from authz.decision_table.run import build_world, run_cases
from authz.policy import default_policy_dir, load_policy_dir
from cli.errors import ERROR, INVALID, fail
from cli.policy.common import ModelPath, PolicyDir, app, emit_json, invalid_input, rule_json


class TestOutput(StrEnum):
    text = "text"
    json = "json"
    junit = "junit"


@app.command("test")
def run_tables(
    files: Annotated[list[Path], typer.Argument(help="decision table YAML files")],
    policy_dir: PolicyDir = None,
    model: ModelPath = None,
    output: Annotated[TestOutput, typer.Option("-o", "--output")] = TestOutput.text,
    with_coverage: Annotated[
        bool, typer.Option("--coverage", help="report which policy lines the cases exercise")
    ] = False,
    threshold: Annotated[
        float | None,
        typer.Option("--threshold", help="with --coverage: exit 1 below this percentage"),
    ] = None,
) -> None:
    """Run decision tables (requests with their expected allow/deny) against the policy."""
    if threshold is not None and not with_coverage:
        fail("--threshold needs --coverage", INVALID)
    results: list[TableResult] = []
    covered: set[str] = set()
    lines = []
    with invalid_input():
        if with_coverage:
            lines = load_policy_dir(policy_dir or default_policy_dir())
        for path in files:
            authorizer = Authorizer(policy_dir=policy_dir, model_path=model)  # once per table
            table = load_table(path, authorizer=authorizer)
            build_world(table, authorizer=authorizer)
            results.append(run_cases(table, authorizer))
            if with_coverage:
                cov = coverage(table, authorizer, lines)
                covered.update(r.source for r in cov.covered)
    total = Coverage(
        tuple(lines),
        tuple(r for r in lines if r.source in covered),
        tuple(r for r in lines if r.source not in covered),
    )
    failed = sum(len(r.failures) for r in results)
    if output is TestOutput.json:
        body: dict[str, Any] = {
            "passed": sum(len(r.results) for r in results) - failed,
            "failed": failed,
            "tables": [_table_json(r) for r in results],
        }
        if with_coverage:
            body["coverage"] = _coverage_json(total)
        emit_json("TestReport", body)
    elif output is TestOutput.junit:
        typer.echo(junit(results))
    else:
        for result in results:
            typer.echo(format_result(result))
        if with_coverage:
            typer.echo(
                f"coverage: {len(total.covered)} of {len(total.lines)} policy lines "
                f"({total.percent:.1f}%)"
            )
            for rule in total.uncovered:
                typer.echo(f"  uncovered {rule.source}: {rule}")
    if failed:
        raise typer.Exit(ERROR)
    if threshold is not None and total.percent < threshold:
        typer.echo(
            f"error: coverage {total.percent:.1f}% is below the threshold {threshold:g}%",
            err=True,
        )
        raise typer.Exit(ERROR)


def _table_json(result: TableResult) -> dict[str, Any]:
    return {
        "path": str(result.table.path),
        "cases": [
            {
                "number": r.case.number,
                "name": r.case.name,
                "source": r.case.source,
                "request": {
                    "subject": r.case.subject,
                    "action": r.case.action,
                    "kind": r.case.kind,
                    "object": r.case.object,
                    "project": r.case.project,
                },
                "expect": r.case.expect,
                "actual": r.actual,
                "reason": r.decision.reason,
                "rule": rule_json(r.decision.rule),
                "passed": r.passed,
                "problems": list(r.problems),
            }
            for r in result.results
        ],
    }


def _coverage_json(cov: Coverage) -> dict[str, Any]:
    return {
        "lines": len(cov.lines),
        "covered": len(cov.covered),
        "percent": round(cov.percent, 2),
        "uncovered": [rule_json(r) for r in cov.uncovered],
    }


def junit(results: list[TableResult]) -> str:
    """JUnit XML: a ``testsuite`` per table, a ``testcase`` per case, ``failure`` if failed."""
    suites = ET.Element("testsuites", name="mcpctl policy test")
    for result in results:
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=str(result.table.path),
            tests=str(len(result.results)),
            failures=str(len(result.failures)),
        )
        for r in result.results:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=str(result.table.path),
                name=f"{r.case.label}: {r.case.request()}",
                file=r.case.source.rpartition(":")[0],
                line=r.case.source.rpartition(":")[2],
            )
            if not r.passed:
                failure = ET.SubElement(case, "failure", message="; ".join(r.problems))
                failure.text = f"expected {r.case.expect}, got {r.actual}: {r.decision.reason}"
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)
