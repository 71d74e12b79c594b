"""Running a decision table: an Authorizer over the policy files plus the table's world.

:func:`run_table` builds an :class:`~authz.engine.Authorizer` from the policy files, the
table's groups, bindings and tokens (clones copy what their creator holds once the rest
is in place, as mcpd does at creation), and asks
:meth:`~authz.engine.Authorizer.decide` every case.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Final

from authz.decision_table.load import table_bindings, token_bindings
from authz.decision_table.model import CaseResult, DecisionTable, TableResult
from authz.engine import Authorizer, TokenGrant
from authz.policy import Rule, gc_paused

__all__ = ["build_world", "run_cases", "run_table"]

#: How long ago an ``expired: true`` token expired.
_EXPIRED_AGO: Final = 3600.0


def run_table(
    table: DecisionTable, *, policy_dir: Path | None = None, model_path: Path | None = None
) -> TableResult:
    """Decide every case of ``table`` over the policy files plus the table's world.

    Raises :class:`DecisionTableError` if a binding names a role or operation the policy
    does not define, and :class:`~authz.errors.PolicyError` if the policy cannot load.
    """
    return run_cases(table, build_world(table, policy_dir, model_path))


def run_cases(table: DecisionTable, authorizer: Authorizer) -> TableResult:
    """Decide every case of ``table`` with ``authorizer`` (see :func:`build_world`)."""
    with gc_paused():  # thousands of acyclic results (see gc_paused)
        return _run_cases(table, authorizer)


def _run_cases(table: DecisionTable, authorizer: Authorizer) -> TableResult:
    results = []
    for case in table.cases:
        decision = authorizer.decide(
            case.decide_as, case.project, case.kind, case.object, case.action
        )
        problems = []
        actual = "allow" if decision.allowed else "deny"
        if actual != case.expect:
            problems.append(f"expected {case.expect}, got {actual}")
        if case.reason is not None and case.reason not in decision.reason:
            problems.append(f"reason does not contain `{case.reason}`")
        results.append(CaseResult(case, decision, tuple(problems)))
    return TableResult(table, tuple(results))


def build_world(
    table: DecisionTable,
    policy_dir: Path | None = None,
    model_path: Path | None = None,
    *,
    authorizer: Authorizer | None = None,
) -> Authorizer:
    """An Authorizer over the policy files plus the table's groups, bindings and tokens
    (``authorizer``: a fresh one over the policy files, to add the world to, saving a load)."""
    now = time.time()

    def at(line: int) -> str:  # where a rule came from, as decision reasons show it
        return f"{table.path.name}:{line}"

    groups = [Rule("g", (m, g.group), at(g.line)) for g in table.groups for m in g.members]
    grants = [
        TokenGrant(
            sha=t.sha,
            project=t.project,
            creator=t.creator,
            name=t.name,
            revoked=t.revoked,
            expires_at=now - _EXPIRED_AGO if t.expired else None,
        )
        for t in table.tokens
    ]
    if authorizer is None:
        authorizer = Authorizer(
            policy_dir=policy_dir, model_path=model_path, stored=groups, tokens=grants
        )
    else:
        authorizer.apply(added=groups)
        for grant in grants:
            authorizer.register_token(grant)
    added: list[Rule] = []
    for b, binding in table_bindings(table, authorizer):
        added.extend(binding.to_rule(sub, at(b.line)) for sub in b.subjects)
    for t, binding in token_bindings(table, authorizer):
        added.append(binding.to_rule(t.subject, at(t.line)))
    authorizer.apply(added=added)
    # Clones copy what the creator holds in the world built so far, like mcpd at creation.
    clones = [
        binding.to_rule(t.subject, f"{at(t.line)}, clone of {t.creator}")
        for t in table.tokens
        if t.rbac == "clone"
        for binding in authorizer.clone_bindings(t.creator, t.project)
    ]
    authorizer.apply(added=clones)
    return authorizer
