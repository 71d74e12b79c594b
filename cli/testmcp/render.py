"""How a report prints: a line per step (text, with marks on a terminal) or JSON.

Neither masks the token: :func:`cli.testmcp.command.mcp` masks everything it prints.
"""

from __future__ import annotations

import json

import typer

from cli.testmcp.report import Report

__all__ = ["render_json", "render_text"]


def render_text(report: Report, *, fancy: bool) -> str:
    width = max((len(s.name) for s in report.steps), default=0)
    lines = [f"mcp endpoint {report.url}"]
    for step in report.steps:
        if fancy:
            mark = typer.style("✓", fg="green") if step.ok else typer.style("✗", fg="red")
        else:
            mark = "ok  " if step.ok else "FAIL"
        lines.append(f"{mark} {step.name.ljust(width)}  {step.detail}  ({step.ms:.1f} ms)")
        lines += [f"    {note}" for note in step.notes]
    lines.append("all checks passed" if report.ok else f"failed (exit {report.code})")
    return "\n".join(lines)


def render_json(report: Report, *, token_given: bool) -> str:
    body = {
        "url": report.url,
        "ok": report.ok,
        "exit_code": report.code,
        "token": "***" if token_given else None,
        "steps": [s.as_dict() for s in report.steps],
    }
    return json.dumps(body, indent=2, ensure_ascii=False)
