"""``policy test --coverage``: which policy lines (p, g, g2) a decision table's cases exercise.

A line is *covered* when removing it changes some case's outcome or reason:

* a ``p`` line is covered when it decides some case (it is the first matching allow or
  deny the reason cites; removing it makes another line, or none, decide), or decides the
  creator ceiling of a token case;
* a ``g`` or ``g2`` line is covered when removing it changes a case's decision or reason.
  Candidates are the links on the paths from each case's subject to its deciding line's
  subject and from its verb to the line's act; each is removed in turn and the cases that
  walked it decided again, so a link with an alternative path is not covered.

Only lines from policy files count (``file:line``); the table's own world is not policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from authz.decision import Decision
from authz.decision_table.model import Case, DecisionTable
from authz.engine import Authorizer
from authz.index import PolicyIndex
from authz.policy import Rule

__all__ = ["Coverage", "coverage"]


@dataclass(frozen=True, slots=True)
class Coverage:
    lines: tuple[Rule, ...]  # every policy-file line, in policy order
    covered: tuple[Rule, ...]
    uncovered: tuple[Rule, ...]

    @property
    def percent(self) -> float:
        return 100.0 * len(self.covered) / len(self.lines) if self.lines else 100.0


def _path(index: PolicyIndex, ptype: str, start: str, goal: str) -> list[tuple[str, str]]:
    """The links of the shortest chain from ``start`` up to ``goal`` (Casbin's BFS order)."""
    if start == goal:
        return []
    parents = index.parents(ptype)
    back: dict[str, str] = {start: start}
    frontier = [start]
    for _ in range(index.max_depth - 1):
        nxt = []
        for node in frontier:
            for parent in sorted(parents.get(node, ())):
                if parent not in back:
                    back[parent] = node
                    nxt.append(parent)
        if goal in back:
            break
        frontier = nxt
    if goal not in back:
        return []
    links = []
    node = goal
    while node != start:
        links.append((back[node], node))
        node = back[node]
    return links


def _decisions(authorizer: Authorizer, case: Case) -> list[Decision]:
    """The case's decision, and for a token its creator's (the ceiling) when that counts."""
    d = authorizer.decide(case.decide_as, case.project, case.kind, case.object, case.action)
    out = [d]
    grant = authorizer.token(case.decide_as.removeprefix("McpToken:"))
    if grant is not None and case.project == grant.project:
        out.append(
            authorizer.decide(grant.creator, case.project, case.kind, case.object, case.action)
        )
    return out


def coverage(table: DecisionTable, authorizer: Authorizer, files: Iterable[Rule]) -> Coverage:
    """Which of ``files`` (the policy-file lines) the cases of ``table`` exercise."""
    lines = [r for r in files if r.source and not r.source.startswith("db:")]
    index = authorizer.index
    deciding: set[str] = set()
    walked: dict[tuple[str, str, str], list[Case]] = {}  # (ptype, child, parent) -> cases
    before: dict[int, tuple[tuple[bool, str], ...]] = {}
    for case in table.cases:
        decisions = _decisions(authorizer, case)
        before[case.number] = tuple((d.allowed, d.reason) for d in decisions)
        subjects = [case.decide_as]
        grant = authorizer.token(case.decide_as.removeprefix("McpToken:"))
        if grant is not None:
            subjects.append(grant.creator)
        for d, sub in zip(decisions, subjects, strict=False):
            if d.rule is None:
                continue
            deciding.add(d.rule.source)
            for ptype, start, goal in (
                ("g", sub, d.rule.sub),
                ("g2", case.action, d.rule.values[4]),
            ):
                for child, parent in _path(index, ptype, start, goal):
                    walked.setdefault((ptype, child, parent), []).append(case)
    covered_links: set[tuple[str, str, str]] = set()
    for (ptype, child, parent), cases in walked.items():
        link = Rule(ptype, (child, parent))
        if not index.remove([link]):
            continue
        try:
            for case in cases:
                now = tuple((d.allowed, d.reason) for d in _decisions(authorizer, case))
                if now != before[case.number]:
                    covered_links.add((ptype, child, parent))
                    break
        finally:
            index.add([link])
    covered = [
        r
        for r in lines
        if (r.ptype == "p" and r.source in deciding)
        or (r.ptype != "p" and (r.ptype, *r.values) in covered_links)
    ]
    seen = {id(r) for r in covered}
    return Coverage(tuple(lines), tuple(covered), tuple(r for r in lines if id(r) not in seen))
