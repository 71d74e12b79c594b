"""The role graphs as wholes: cycles, and chains longer than Casbin follows.

Checked for ``g`` (subjects and groups) and ``g2`` (verbs, roles and operations) apart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Final

from authz.lint.issues import LintIssue, error
from authz.policy import Rule

__all__ = ["MAX_HIERARCHY_LEVEL", "GraphCheck"]

#: Casbin's role manager default (``max_hierarchy_level``): from a request's subject or
#: verb it follows at most ``MAX_HIERARCHY_LEVEL - 1`` links, so a chain of that many
#: links or more has a top the bottom never reaches. :class:`authz.index.PolicyIndex` agrees.
MAX_HIERARCHY_LEVEL: Final = 10


class GraphCheck:
    """Cycles and over-long chains in one role graph (``g`` or ``g2``)."""

    def __init__(self, ptype: str, rules: list[Rule]) -> None:
        self.ptype = ptype
        self.rules = rules
        self.up: dict[str, set[str]] = {}
        for rule in rules:
            child, parent = rule.values
            self.up.setdefault(child, set()).add(parent)
        self._reach: dict[str, set[str]] = {}

    def reach(self, node: str) -> set[str]:
        """Every node one or more links above ``node``."""
        found = self._reach.get(node)
        if found is None:
            found = set()
            stack = list(self.up.get(node, ()))
            while stack:
                n = stack.pop()
                if n not in found:
                    found.add(n)
                    stack.extend(self.up.get(n, ()))
            self._reach[node] = found
        return found

    def in_cycle(self, child: str, parent: str) -> bool:
        return child == parent or child in self.reach(parent)

    def issues(self) -> list[LintIssue]:
        return [*self._cycles(), *self._depth()]

    def _cycles(self) -> Iterator[LintIssue]:
        reported: set[frozenset[str]] = set()
        for rule in self.rules:
            child, parent = rule.values
            if not self.in_cycle(child, parent):
                continue
            component = frozenset(
                {child} | {n for n in self.reach(child) if child in self.reach(n)}
            )
            if component in reported:
                continue
            reported.add(component)
            path = [child, *self._path(parent, child)] if child != parent else [child, child]
            yield error(
                rule.source,
                "cycle",
                f"`{self.ptype}` links form a cycle: " + " -> ".join(f"`{n}`" for n in path),
            )

    def _path(self, start: str, goal: str) -> list[str]:
        """The shortest chain of links from ``start`` up to ``goal`` (both included)."""
        back: dict[str, str] = {}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            if node == goal:
                break
            for parent in sorted(self.up.get(node, ())):
                if parent not in back and parent != start:
                    back[parent] = node
                    queue.append(parent)
        path = [goal]
        while path[-1] != start:
            path.append(back[path[-1]])
        return path[::-1]

    def _depth(self) -> Iterator[LintIssue]:
        """Links that sit ``MAX_HIERARCHY_LEVEL`` links above some bottom node."""
        # Longest chain below each node, over the links that are not part of a cycle
        # (those form a DAG), in topological order from the bottom nodes up.
        edges = {
            (rule.values[0], rule.values[1])
            for rule in self.rules
            if not self.in_cycle(*rule.values)
        }
        pending: dict[str, int] = {}
        above: dict[str, list[str]] = {}
        for child, parent in edges:
            pending[parent] = pending.get(parent, 0) + 1
            above.setdefault(child, []).append(parent)
        nodes = {n for edge in edges for n in edge}
        depth = {n: 0 for n in nodes}
        bottom = {n: n for n in nodes}
        ready = sorted(n for n in nodes if n not in pending)
        while ready:
            node = ready.pop()
            for parent in above.get(node, ()):
                if depth[node] + 1 > depth[parent]:
                    depth[parent], bottom[parent] = depth[node] + 1, bottom[node]
                pending[parent] -= 1
                if not pending[parent]:
                    ready.append(parent)
        limit = MAX_HIERARCHY_LEVEL - 1
        reported: set[tuple[str, str]] = set()
        for rule in self.rules:
            child, parent = rule.values
            edge = (child, parent)
            if edge in edges and edge not in reported and depth[child] == limit:
                reported.add(edge)
                yield error(
                    rule.source,
                    "too-deep",
                    f"`{bottom[child]}` reaches `{parent}` only through {limit + 1} "
                    f"`{self.ptype}` links, and casbin follows at most {limit} "
                    f"(max hierarchy level {MAX_HIERARCHY_LEVEL}): this link is never used "
                    f"from `{bottom[child]}`",
                )
