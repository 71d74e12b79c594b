"""``lint``: every check, in order, over the model and one policy directory."""

from __future__ import annotations

from pathlib import Path

from authz.lint.graph import GraphCheck
from authz.lint.issues import LintIssue
from authz.lint.lines import LineCheck, read_rules
from authz.lint.model import lint_model
from authz.lint.overlap import OverlapCheck
from authz.policy import gc_paused

__all__ = ["lint"]


def lint(policy_dir: Path, model_path: Path) -> list[LintIssue]:
    """Every problem of the model at ``model_path`` and the policy files in ``policy_dir``.

    Sorted by file and line. CI fails on any issue; an ``error`` is a line the engine
    refuses or that cannot do what it says, a ``warning`` one that is probably a mistake.
    """
    issues: list[LintIssue] = lint_model(model_path)
    with gc_paused():  # a batch over acyclic data (see gc_paused)
        rules = read_rules(policy_dir, issues)
        issues.extend(LineCheck(rules).issues())
        issues.extend(OverlapCheck(rules).issues())
        for ptype in ("g", "g2"):
            issues.extend(GraphCheck(ptype, [r for r in rules if r.ptype == ptype]).issues())
    return sorted(issues, key=lambda i: (*i.location, i.code, i.message))
