"""The model file: does it parse, and is it the model the index implements?

A model that parses but differs is a warning, not an error: the engine then decides with
Casbin's plain enforcer, correctly but slowly.
"""

from __future__ import annotations

from pathlib import Path

from authz.errors import PolicyError
from authz.lint.issues import LintIssue, bare, error, warning
from authz.reference import load_model, model_differences

__all__ = ["lint_model"]


def lint_model(model_path: Path) -> list[LintIssue]:
    try:
        model = load_model(model_path)
    except PolicyError as exc:
        return [error(str(model_path), "bad-model", bare(exc))]
    diffs = model_differences(model)
    if not diffs:
        return []
    return [
        warning(
            str(model_path),
            "model-differs",
            "model differs from the one the index implements, so decisions fall back to "
            "the plain enforcer (slow): " + "; ".join(diffs),
        )
    ]
