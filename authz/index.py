"""The hot path: an index over the policy that decides exactly as the model does.

For the model in ``model.conf`` a policy line matches a request when

* its subject is the request's subject or reachable from it through ``g`` links
  (Casbin's role manager follows at most ``max_depth`` levels),
* its act is the request's verb or reachable from it through ``g2`` links,
* its project is ``*`` or the request's project, and
* its (kind, name) is one of (kind|*, name|*), or - for a tool, prompt or resource -
  (servers, toolServer(name)|*).

So instead of scanning every line, the index looks up the few keys a request can
match: for each subject in the caller's ``g`` closure, a dict keyed by (project, kind,
name) whose entries carry their act, kept when the act is in the verb's ``g2`` closure.
A decision costs a few dozen dict look-ups whatever the size of the policy (probing per
subject rather than per (subject, act) pair: about half the look-ups of a 100k-line
policy's requests). Closures are cached per subject and
per verb; a ``g`` change drops exactly the cached closures that contain the changed
member, a ``g2`` change the verb closures likewise, and a ``p`` change touches one
bucket and no cache. The differential test holds this equal to ``casbin.Enforcer``.

Thread safety: writers serialise on a lock; readers take no lock. Buckets are
replaced, never mutated in place, and a closure computed while the graph changed
is not cached (generation counter).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from authz.policy import ALLOW, DENY, Rule
from authz.vocabulary import ANY, SERVER_PARTS, tool_server

_Key = tuple[str, str, str]  # (proj, kind, name)
#: (effect code, position in policy order, act, rule): what a decision reads of a line,
#: unpacked once when the line is indexed. Ordered so that the least of a request's
#: entries is its first deny line if it has one, else its first allow line.
_Entry = tuple[int, int, str, Rule]
_Bucket = dict[_Key, tuple[_Entry, ...]]  # one subject's lines by scope

#: Effect codes of entries: a line of any other effect matches neither side (as in Casbin).
_DENY, _ALLOW, _OTHER = 0, 1, 2

#: The index's keys are interned: a policy's values repeat (subjects, projects, kinds,
#: roles), so its look-ups touch a few shared strings instead of one copy per line, and
#: a subject of a closure (from the g graph) is the very object keying its bucket.
_intern = sys.intern


def _entry(pos: int, rule: Rule) -> _Entry:
    eft = rule.values[5]
    code = _DENY if eft == DENY else _ALLOW if eft == ALLOW else _OTHER
    return (code, pos, _intern(rule.values[4]), rule)


@dataclass(frozen=True, slots=True)
class Match:
    """The outcome of matching one request against the policy."""

    allow: Rule | None  # the first matching allow line, in policy order
    deny: Rule | None  # the first matching deny line, in policy order
    subjects: tuple[str, ...]  # the subject and everything it reaches through g
    acts: tuple[str, ...]  # the verb and every role or operation that includes it

    @property
    def allowed(self) -> bool:
        return self.allow is not None and self.deny is None


class _Graph:
    """A Casbin role graph (``g`` or ``g2``): member -> parents, with a multiset of links."""

    def __init__(self) -> None:
        self.up: dict[str, dict[str, int]] = {}

    # Writers replace a member's parents dict instead of changing it in place, so a
    # reader walking the graph without a lock never sees a dict change under it.
    def add(self, child: str, parent: str) -> None:
        parents = dict(self.up.get(child, {}))
        parents[parent] = parents.get(parent, 0) + 1
        self.up[child] = parents

    def remove(self, child: str, parent: str) -> bool:
        parents = dict(self.up.get(child, {}))
        if parent not in parents:
            return False
        if parents[parent] > 1:
            parents[parent] -= 1
        else:
            del parents[parent]
        if parents:
            self.up[child] = parents
        else:
            del self.up[child]
        return True

    def closure(self, name: str, max_depth: int) -> tuple[str, ...]:
        """``name`` and every node at most ``max_depth - 1`` links above it (Casbin's BFS)."""
        seen = {name}
        order = [name]
        frontier = [name]
        for _ in range(max_depth - 1):
            nxt = []
            for node in frontier:
                for parent in self.up.get(node, ()):
                    if parent not in seen:
                        seen.add(parent)
                        order.append(parent)
                        nxt.append(parent)
            if not nxt:
                break
            frontier = nxt
        return tuple(order)


class PolicyIndex:
    """Index of ``p``, ``g`` and ``g2`` rules answering :meth:`match` without a scan."""

    def __init__(self, rules: Iterable[Rule] = (), *, max_depth: int = 10) -> None:
        self.max_depth = max_depth
        self._lock = threading.Lock()
        self._p: dict[str, _Bucket] = {}  # subject -> its lines by (proj, kind, name)
        self._next = 0  # position of the next rule in policy order
        self._g = _Graph()
        self._g2 = _Graph()
        self._sub_cache: dict[str, tuple[str, ...]] = {}
        self._act_cache: dict[str, tuple[str, ...]] = {}
        self._gen = 0
        self._count = 0
        with self._lock:
            self._load(rules)

    def _load(self, rules: Iterable[Rule]) -> None:
        """:meth:`_add` for every rule of a new index, inlined (no cache to invalidate yet):
        a 100k-line load spends most of its time here."""
        p, pos = self._p, self._next
        g, g2 = self._g.up, self._g2.up
        for rule in rules:
            ptype = rule.ptype
            if ptype == "p":
                sub, proj, kind, name, act, eft = rule.values
                sub = _intern(sub)
                bucket = p.get(sub)
                if bucket is None:
                    bucket = p[sub] = {}
                key = (_intern(proj), _intern(kind), _intern(name))
                entry = (
                    _DENY if eft == DENY else _ALLOW if eft == ALLOW else _OTHER,
                    pos,
                    _intern(act),
                    rule,
                )
                held = bucket.get(key)
                bucket[key] = (entry,) if held is None else (*held, entry)
            elif ptype == "g" or ptype == "g2":
                # _Graph.add inlined, changing the parents' dict in place: nobody reads yet
                child, parent = rule.values
                up = g if ptype == "g" else g2
                parents = up.get(child)
                if parents is None:
                    parents = up[_intern(child)] = {}
                parent = _intern(parent)
                parents[parent] = parents.get(parent, 0) + 1
            pos += 1
        self._count += pos - self._next
        self._next = pos

    def __len__(self) -> int:
        return self._count

    # -- writing ---------------------------------------------------------------

    def add(self, rules: Iterable[Rule]) -> None:
        with self._lock:
            for rule in rules:
                self._add(rule)

    def remove(self, rules: Iterable[Rule]) -> list[Rule]:
        """Remove one occurrence of each rule; returns the ones that were present."""
        removed = []
        with self._lock:
            for rule in rules:
                if self._remove(rule):
                    removed.append(rule)
        return removed

    def _add(self, rule: Rule) -> None:
        self._count += 1
        pos = self._next
        self._next += 1
        if rule.ptype == "p":
            sub, proj, kind, name, _, _ = rule.values
            sub = _intern(sub)
            bucket = self._p.get(sub)
            if bucket is None:
                bucket = self._p[sub] = {}
            key = (_intern(proj), _intern(kind), _intern(name))
            bucket[key] = (*bucket.get(key, ()), _entry(pos, rule))
        elif rule.ptype == "g":
            self._g.add(*map(_intern, rule.values))
            self._invalidate(self._sub_cache, rule.values[0])
        elif rule.ptype == "g2":
            self._g2.add(*map(_intern, rule.values))
            self._invalidate(self._act_cache, rule.values[0])

    def _remove(self, rule: Rule) -> bool:
        if rule.ptype == "p":
            sub, proj, kind, name, _, _ = rule.values
            bucket = self._p.get(sub)
            key = (proj, kind, name)
            entries = bucket.get(key, ()) if bucket else ()
            for i, entry in enumerate(entries):
                if entry[3] == rule:  # the first occurrence in policy order, as Casbin removes
                    rest = entries[:i] + entries[i + 1 :]
                    assert bucket is not None
                    if rest:
                        bucket[key] = rest
                    else:
                        del bucket[key]
                        if not bucket:
                            del self._p[sub]
                    self._count -= 1
                    return True
            return False
        graph, cache = (
            (self._g, self._sub_cache) if rule.ptype == "g" else (self._g2, self._act_cache)
        )
        if not graph.remove(*rule.values):
            return False
        self._invalidate(cache, rule.values[0])
        self._count -= 1
        return True

    def _invalidate(self, cache: dict[str, tuple[str, ...]], member: str) -> None:
        """Drop the cached closures that reach ``member``: only those can change."""
        self._gen += 1
        # Readers add closures concurrently: iterate a snapshot (dict.copy is atomic).
        for key, closure in cache.copy().items():
            if member in closure:
                cache.pop(key, None)

    # -- reading ---------------------------------------------------------------

    def subjects_of(self, sub: str) -> tuple[str, ...]:
        return self._closure(self._g, self._sub_cache, sub)

    def acts_of(self, verb: str) -> tuple[str, ...]:
        return self._closure(self._g2, self._act_cache, verb)

    def _closure(
        self, graph: _Graph, cache: dict[str, tuple[str, ...]], name: str
    ) -> tuple[str, ...]:
        hit = cache.get(name)
        if hit is not None:
            return hit
        gen = self._gen
        closure = graph.closure(name, self.max_depth)
        if gen == self._gen and len(cache) < 1_000_000:
            cache[name] = closure
            if gen != self._gen:  # a writer changed the graph meanwhile: maybe stale
                cache.pop(name, None)
        return closure

    @staticmethod
    def object_keys(kind: str, name: str) -> list[tuple[str, str]]:
        """The (kind, name) values of policy lines that can match a request's object."""
        keys = [(kind, name)]
        if name != ANY:
            keys.append((kind, ANY))
        if kind != ANY:
            keys.append((ANY, name))
            if name != ANY:
                keys.append((ANY, ANY))
        if kind in SERVER_PARTS:
            server = tool_server(name)
            keys.append(("servers", server))
            if server != ANY:
                keys.append(("servers", ANY))
        return keys

    def match(self, sub: str, proj: str, kind: str, name: str, act: str) -> Match:
        """The first matching allow and deny lines (in policy order) for a request."""
        subjects = self.subjects_of(sub)
        acts = self.acts_of(act)
        entries = self._entries(subjects, acts, proj, kind, name)
        if not entries:
            return Match(None, None, subjects, acts)
        first = min(entries)  # in C: the first deny line, or else the first allow line
        if first[0] == _ALLOW:
            return Match(first[3], None, subjects, acts)
        if first[0] == _OTHER:
            return Match(None, None, subjects, acts)
        allows = [e for e in entries if e[0] == _ALLOW]
        return Match(min(allows)[3] if allows else None, first[3], subjects, acts)

    def matching_rules(self, sub: str, proj: str, kind: str, name: str, act: str) -> list[Rule]:
        """Every policy line that matches the request, in policy order (for explain)."""
        entries = sorted(
            self._entries(self.subjects_of(sub), self.acts_of(act), proj, kind, name),
            key=lambda e: e[1],
        )
        return [e[3] for e in entries]

    def _entries(
        self, subjects: tuple[str, ...], acts: tuple[str, ...], proj: str, kind: str, name: str
    ) -> list[_Entry]:
        """The entries under every (subject, project, kind, name) key the request can match
        whose act is in ``acts``."""
        keys = self.request_keys(proj, kind, name)
        p = self._p
        if len(acts) > 4:  # a set pays off over a few string comparisons
            acts = frozenset(acts)  # type: ignore[assignment]
        return [
            entry
            for s in subjects
            if (bucket := p.get(s))
            for key in keys
            if (entries := bucket.get(key))
            for entry in entries
            if entry[2] in acts
        ]

    def request_keys(self, proj: str, kind: str, name: str) -> list[_Key]:
        """The (project, kind, name) keys of lines that can match a request's scope."""
        projs = (proj,) if proj == ANY else (proj, ANY)
        return [(pj, k, n) for pj in projs for k, n in self.object_keys(kind, name)]

    def lines_for(self, act: str, proj: str, kind: str, name: str) -> list[tuple[int, Rule]]:
        """(position, line) of every ``p`` line of any subject matching the request's verb and
        scope, in policy order (who-can: the subject is what is asked)."""
        acts = set(self.acts_of(act))
        keys = self.request_keys(proj, kind, name)
        entries = [
            (entry[1], entry[3])
            for bucket in self._p.copy().values()
            for key in keys
            if (held := bucket.get(key))
            for entry in held
            if entry[2] in acts
        ]
        entries.sort(key=lambda e: e[0])
        return entries

    def children(self, ptype: str) -> dict[str, set[str]]:
        """The ``g`` or ``g2`` graph downwards: parent -> its direct members."""
        down: dict[str, set[str]] = {}
        for child, parents in (self._g if ptype == "g" else self._g2).up.copy().items():
            for parent in parents:
                down.setdefault(parent, set()).add(child)
        return down

    # -- inspection (lint, ceilings, clone) ----------------------------------------

    def p_rules(self, subjects: Iterable[str] | None = None) -> list[Rule]:
        """The ``p`` rules (of ``subjects`` only, when given), in policy order."""
        p = self._p.copy()
        buckets = p.values() if subjects is None else [p[s] for s in set(subjects) if s in p]
        entries = [e for bucket in buckets for es in bucket.copy().values() for e in es]
        entries.sort(key=lambda e: e[1])
        return [e[3] for e in entries]

    def names(self) -> set[str]:
        """Every name a ``p`` line gives (``*`` included)."""
        return {key[2] for bucket in self._p.copy().values() for key in bucket.copy()}

    def members_of(self, parent: str, ptype: str = "g2") -> set[str]:
        """Everything below ``parent`` in the ``g`` or ``g2`` graph (transitively)."""
        graph = self._g if ptype == "g" else self._g2
        down: dict[str, set[str]] = {}
        for child, parents in graph.up.copy().items():
            for par in parents:
                down.setdefault(par, set()).add(child)
        found: set[str] = set()
        stack = [parent]
        while stack:
            for child in down.get(stack.pop(), ()):
                if child not in found:
                    found.add(child)
                    stack.append(child)
        return found

    def parents(self, ptype: str) -> dict[str, set[str]]:
        graph = self._g if ptype == "g" else self._g2
        return {c: set(ps) for c, ps in graph.up.copy().items()}
