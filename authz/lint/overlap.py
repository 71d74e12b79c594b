"""Lines against each other: duplicates, allows that do nothing, and groups that grant nothing.

``shadowed``: an allow made redundant by a wider allow of the same subject;
``overridden``: an allow that a deny cancels entirely - a deny of the same subject or of a
group the subject is in (through ``g``, as far as Casbin follows it); ``unused-group``: a
group that has members but neither it nor any group above it is named by a ``p`` line.
"Wider" counts what roles and operations include through ``g2``, and that a line on
``servers/NAME`` also matches every tool of that server.

Lines are indexed by (subject, project, kind, name, act): for each allow only the few keys
that can cover it are looked up, so a subject with 20,000 lines costs 20,000 look-ups, not
20,000 squared comparisons.
"""

from __future__ import annotations

from collections.abc import Iterator

from authz.lint.graph import MAX_HIERARCHY_LEVEL
from authz.lint.issues import LintIssue, warning
from authz.policy import DENY, Rule
from authz.vocabulary import ANY, SERVER_PARTS, tool_server

__all__ = ["OverlapCheck"]

_Key = tuple[str, str, str, str]  # (proj, kind, name, act)
_Table = dict[str, dict[_Key, list[tuple[int, Rule]]]]  # subject -> key -> lines


class OverlapCheck:
    """Duplicate lines, allows that a wider allow or a deny makes pointless, unused groups."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self._down: dict[str, set[str]] = {}
        self._act_up: dict[str, set[str]] = {}
        self._g_up: dict[str, set[str]] = {}
        for rule in rules:
            if rule.ptype == "g2":
                child, parent = rule.values
                self._down.setdefault(parent, set()).add(child)
                self._act_up.setdefault(child, set()).add(parent)
            elif rule.ptype == "g":
                self._g_up.setdefault(rule.values[0], set()).add(rule.values[1])
        self._members: dict[str, set[str]] = {}
        self._above: dict[str, tuple[str, ...]] = {}
        self._groups_cache: dict[str, list[str]] = {}
        self._allows: _Table = {}
        self._denies: _Table = {}
        for pos, rule in enumerate(rules):
            if rule.ptype == "p":
                sub, proj, kind, name, act, eft = rule.values
                table = self._denies if eft == DENY else self._allows
                by_key = table.setdefault(sub, {})
                by_key.setdefault((proj, kind, name, act), []).append((pos, rule))

    def issues(self) -> list[LintIssue]:
        return [*self._duplicates(), *self._shadows(), *self._unused_groups()]

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

    def _acts_above(self, act: str) -> tuple[str, ...]:
        """``act`` and every role or operation that includes it (transitively)."""
        found = self._above.get(act)
        if found is None:
            seen, stack = {act}, [act]
            while stack:
                for parent in self._act_up.get(stack.pop(), ()):
                    if parent not in seen:
                        seen.add(parent)
                        stack.append(parent)
            found = self._above[act] = tuple(seen)
        return found

    def _groups_of(self, sub: str) -> list[str]:
        """The groups ``sub`` reaches through ``g``, as far as Casbin follows (not ``sub``)."""
        cached = self._groups_cache.get(sub)
        if cached is not None:
            return cached
        seen, order, frontier = {sub}, [], [sub]
        for _ in range(MAX_HIERARCHY_LEVEL - 1):
            nxt = []
            for node in frontier:
                for parent in sorted(self._g_up.get(node, ())):
                    if parent not in seen:
                        seen.add(parent)
                        order.append(parent)
                        nxt.append(parent)
            frontier = nxt
        self._groups_cache[sub] = order
        return order

    def _covers(self, outer: Rule, inner: Rule) -> bool:
        """Whether ``outer`` matches every request ``inner`` matches."""
        return _scope_covers(outer, inner) and self._includes(outer.values[4], inner.values[4])

    def _keys(self, inner: Rule) -> set[_Key]:
        """The (project, kind, name, act) keys of the lines that cover ``inner``: exactly
        those lines match every request ``inner`` matches (see :func:`_scope_covers`)."""
        _, proj, kind, name, act, _ = inner.values
        objects = {(k, n) for k in (kind, ANY) for n in (name, ANY)}
        if kind in SERVER_PARTS:
            objects.add(("servers", ANY))
            if name != ANY:
                objects.add(("servers", tool_server(name)))
        acts = self._acts_above(act)
        return {(pj, k, n, a) for pj in {proj, ANY} for k, n in objects for a in acts}

    @staticmethod
    def _first(table: _Table, subs: list[str], keys: set[_Key]) -> tuple[int, Rule] | None:
        """The first line (in policy order) of ``subs`` under any of ``keys``.

        Each key's lines are in policy order, so only its first can be the first: however
        many lines repeat one key, this costs one look-up per key a subject has (the
        subject's keys and ``keys`` are intersected in C)."""
        best: tuple[int, Rule] | None = None
        for sub in subs:
            by_key = table.get(sub)
            if not by_key:
                continue
            for key in by_key.keys() & keys:
                first = by_key[key][0]
                if best is None or first[0] < best[0]:
                    best = first
        return best

    def _shadows(self) -> Iterator[LintIssue]:
        for by_key in self._allows.values():
            for own_key, entries in by_key.items():
                # Lines under one key of one subject are equal: they share every verdict.
                rule = entries[0][1]
                keys = self._keys(rule)
                subs = [rule.sub, *self._groups_of(rule.sub)]
                deny_entry = self._first(self._denies, subs, keys)
                if deny_entry is not None:
                    deny = deny_entry[1]
                    whose = "" if deny.sub == rule.sub else f" of {deny.sub} ({rule.sub} is in it)"
                    for _, line in entries:
                        yield warning(
                            line.source,
                            "overridden",
                            f"this allow never takes effect: the deny{whose} {deny.source} "
                            f"(`{deny}`) covers its whole scope and `{rule.values[4]}`",
                        )
                    continue
                for pos, line in entries:
                    wider = self._wider(by_key, own_key, keys, pos, line)
                    if wider is not None:
                        yield warning(
                            line.source,
                            "shadowed",
                            f"this allow is redundant: {wider.source} (`{wider}`) already "
                            "allows the same subject all of it",
                        )

    def _wider(
        self,
        by_key: dict[_Key, list[tuple[int, Rule]]],
        own: _Key,
        keys: set[_Key],
        pos: int,
        rule: Rule,
    ) -> Rule | None:
        """The first other allow of the subject that covers ``rule`` and that makes it the
        redundant one: an earlier line, or a later one that ``rule`` does not cover back.
        (Equal lines under ``own`` are duplicates, reported as such.)"""
        best: tuple[int, Rule] | None = None
        for key in by_key.keys() & keys:
            if key == own:
                continue
            first = by_key[key][0]  # the key's lines are equal: the first qualifies or none does
            if (first[0] < pos or not self._covers(rule, first[1])) and (
                best is None or first[0] < best[0]
            ):
                best = first
        return best[1] if best else None

    def _unused_groups(self) -> Iterator[LintIssue]:
        named = set(self._allows) | set(self._denies)
        reported: set[str] = set()
        for rule in self.rules:
            if rule.ptype != "g":
                continue
            group = rule.values[1]
            if not group.startswith("Group:") or group in reported or group in named:
                continue
            if any(g in named for g in self._groups_of(group)):
                continue
            reported.add(group)
            yield warning(
                rule.source,
                "unused-group",
                f"group `{group}` has members but grants nothing: no `p` line names it "
                "or a group it is in",
            )


def _scope_covers(outer: Rule, inner: Rule) -> bool:
    """Whether ``outer``'s project and object match every request ``inner``'s do."""
    _, oproj, okind, oname, _, _ = outer.values
    _, iproj, ikind, iname, _, _ = inner.values
    if oproj not in (ANY, iproj):
        return False
    if okind in (ANY, ikind) and oname in (ANY, iname):
        return True
    # A line on servers/NAME (or servers/*) also matches every tool (prompt, resource) of
    # that server.
    return (
        ikind in SERVER_PARTS
        and okind == "servers"
        and (oname == ANY or (iname != ANY and oname == tool_server(iname)))
    )
