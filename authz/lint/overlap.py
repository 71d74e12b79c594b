"""Lines of one subject against each other: duplicates, and allows that do nothing.

``shadowed``: an allow made redundant by a wider allow of the same subject;
``overridden``: an allow that a deny of the same subject cancels entirely. "Wider" counts
what roles and operations include through ``g2``, and that a line on ``servers/NAME`` also
matches every tool of that server.
"""

from __future__ import annotations

from collections.abc import Iterator

from authz.lint.issues import LintIssue, warning
from authz.policy import ALLOW, DENY, Rule
from authz.vocabulary import ANY, tool_server

__all__ = ["OverlapCheck"]


class OverlapCheck:
    """Duplicate lines, and allows that a wider allow or a deny makes pointless."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self._down: dict[str, set[str]] = {}
        for rule in rules:
            if rule.ptype == "g2":
                child, parent = rule.values
                self._down.setdefault(parent, set()).add(child)
        self._members: dict[str, set[str]] = {}

    def issues(self) -> list[LintIssue]:
        return [*self._duplicates(), *self._shadows()]

    def _duplicates(self) -> Iterator[LintIssue]:
        first: dict[Rule, Rule] = {}
        for rule in self.rules:
            seen = first.setdefault(rule, rule)
            if seen is not rule:
                yield warning(
                    rule.source, "duplicate", f"duplicate of {seen.source}: `{rule}` appears twice"
                )

    def _includes(self, big: str, small: str) -> bool:
        """Whether role or operation ``big`` includes ``small`` through ``g2`` (or is it)."""
        if big == small:
            return True
        members = self._members.get(big)
        if members is None:
            members, stack = set(), [big]
            while stack:
                for child in self._down.get(stack.pop(), ()):
                    if child not in members:
                        members.add(child)
                        stack.append(child)
            self._members[big] = members
        return small in members

    def _covers(self, outer: Rule, inner: Rule) -> bool:
        """Whether ``outer`` matches every request ``inner`` matches."""
        return _scope_covers(outer, inner) and self._includes(outer.values[4], inner.values[4])

    def _shadows(self) -> Iterator[LintIssue]:
        by_subject: dict[str, list[tuple[int, Rule]]] = {}
        for pos, rule in enumerate(self.rules):
            if rule.ptype == "p":
                by_subject.setdefault(rule.sub, []).append((pos, rule))
        for lines in by_subject.values():
            allows = [(pos, r) for pos, r in lines if r.eft == ALLOW]
            denies = [r for _, r in lines if r.eft == DENY]
            for pos, rule in allows:
                deny = next((d for d in denies if self._covers(d, rule)), None)
                if deny is not None:
                    yield warning(
                        rule.source,
                        "overridden",
                        f"this allow never takes effect: the deny {deny.source} (`{deny}`) "
                        f"covers its whole scope and `{rule.values[4]}`",
                    )
                    continue
                wider = next(
                    (
                        other
                        for opos, other in allows
                        if other != rule
                        and self._covers(other, rule)
                        and (opos < pos or not self._covers(rule, other))
                    ),
                    None,
                )
                if wider is not None:
                    yield warning(
                        rule.source,
                        "shadowed",
                        f"this allow is redundant: {wider.source} (`{wider}`) already allows "
                        "the same subject all of it",
                    )


def _scope_covers(outer: Rule, inner: Rule) -> bool:
    """Whether ``outer``'s project and object match every request ``inner``'s do."""
    _, oproj, okind, oname, _, _ = outer.values
    _, iproj, ikind, iname, _, _ = inner.values
    if oproj not in (ANY, iproj):
        return False
    if okind in (ANY, ikind) and oname in (ANY, iname):
        return True
    # A line on servers/NAME (or servers/*) also matches every tool of that server.
    return (
        ikind == "tools"
        and okind == "servers"
        and (oname == ANY or (iname != ANY and oname == tool_server(iname)))
    )
