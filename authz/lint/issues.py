"""A lint finding: where, how bad, a short code and why, and how it prints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from authz.errors import PolicyError

__all__ = [
    "LintIssue",
    "Severity",
    "bare",
    "error",
    "format_issue",
    "issue_to_json",
    "warning",
]

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class LintIssue:
    """One finding: where (``path:line`` or a file path), how bad, a short code, and why."""

    severity: Severity
    source: str
    code: str
    message: str

    @property
    def location(self) -> tuple[str, int]:
        """``(path, line)``; line 0 for an issue about a whole file."""
        path, sep, line = self.source.rpartition(":")
        if sep and line.isdigit():
            return path, int(line)
        return self.source, 0


def format_issue(issue: LintIssue) -> str:
    """``path:line: error: message [code]``, the shape compilers and linters print."""
    return f"{issue.source}: {issue.severity}: {issue.message} [{issue.code}]"


def issue_to_json(issue: LintIssue) -> dict[str, object]:
    """One finding in ``policy lint -o json`` (schema version 1, see README)."""
    path, line = issue.location
    return {
        "severity": issue.severity,
        "code": issue.code,
        "message": issue.message,
        "source": issue.source,
        "path": path,
        "line": line,
    }


def error(source: str, code: str, message: str) -> LintIssue:
    return LintIssue("error", source, code, message)


def warning(source: str, code: str, message: str) -> LintIssue:
    return LintIssue("warning", source, code, message)


def bare(exc: PolicyError) -> str:
    """The message of ``exc`` without the ``source:`` it starts with (issues carry their own)."""
    text = str(exc)
    return text.removeprefix(f"{exc.source}: ") if exc.source else text
