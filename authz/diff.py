"""``policy diff OLD NEW``: exactly the decisions two policies disagree on.

The universe is finite and built from what the two policies name (:class:`Universe`):
every subject a ``p`` or ``g`` line names; the projects lines name, plus no project (``""``)
and ``(other)`` standing for any project no line names; every resource kind with the names
lines give it (or give kind ``*``), the collection (``""``) and ``(other)``, and for tools,
prompts and resources ``SERVER__(other)`` for each server named and ``(other)__(other)``;
the verbs Casbin's ``g2`` lines and the product know. A name no line names decides like
its stand-in, so the diff over the universe is the diff over every request.

:func:`diff` does not decide the whole universe. Subjects that reach the same ``p``
subjects in both policies decide alike, so they are grouped; for each group only the
requests some *relevant* line matches are decided - a line present in one policy only, a
line of a subject the group reaches in one policy only, or (when ``g2`` changed) a line
whose act a verb now reaches differently. Any other request matches the same lines in both
policies, so decides the same. :func:`brute_force` decides everything (for the tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Literal, NamedTuple

from authz.decision import Decision
from authz.engine import Authorizer
from authz.policy import Rule, gc_paused
from authz.vocabulary import (
    ANY,
    CRUD_VERBS,
    KINDS,
    NO_PROJECT,
    OPERATION_PREFIX,
    ROLE_PREFIX,
    SERVER_PARTS,
    tool_server,
)

__all__ = ["OTHER", "Change", "PolicyDiff", "Universe", "brute_force", "diff"]

#: The stand-in for "any other" project or name (no policy value can contain brackets).
OTHER = "(other)"

Request = tuple[str, str, str, str]  # (project, kind, name, verb)
Verdict = Literal["equivalent", "more permissive", "less permissive", "incomparable"]


class Change(NamedTuple):
    """One decision that differs: ``gained`` (allowed only in NEW) or ``lost``.

    ``old`` and ``new`` are the decisions with their deciding lines; subjects (and names)
    that decide alike share one pair, whose reason text names the one actually asked.
    (A named tuple: a diff can hold hundreds of thousands, built in a tight loop.)"""

    subject: str
    project: str
    kind: str
    name: str
    verb: str
    gained: bool
    old: Decision
    new: Decision

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.subject, self.project, self.kind, self.name, self.verb)


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    changes: tuple[Change, ...]
    projects: tuple[str, ...]  # every project of the universe
    verdicts: dict[str, Verdict] = field(default_factory=dict)

    @property
    def gained(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.gained)

    @property
    def lost(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if not c.gained)


def _p(rules: Iterable[Rule]) -> list[Rule]:
    return [r for r in rules if r.ptype == "p"]


class Universe:
    """The finite set of subjects and requests two policies can tell apart."""

    def __init__(self, old: Authorizer, new: Authorizer) -> None:
        rules = [*old.rules(), *new.rules()]
        # Distinct values first: two policies share most lines, a few values recur a lot.
        plines = {r.values for r in rules if r.ptype == "p"}
        g_values = {v for r in rules if r.ptype == "g" for v in r.values}
        self.subjects = sorted({v[0] for v in plines} | g_values)
        self.projects = sorted({NO_PROJECT, OTHER} | {v[1] for v in plines} - {ANY})
        self.names = {k: sorted(v) for k, v in names_named(plines).items()}
        verbs = set(CRUD_VERBS)
        acts = {v[4] for v in plines} | {v for r in rules if r.ptype == "g2" for v in r.values}
        verbs.update(a for a in acts if not a.startswith((ROLE_PREFIX, OPERATION_PREFIX)))
        self.verbs = sorted(verbs)
        self.name_sets = {k: set(v) for k, v in self.names.items()}
        # kind -> server -> the universe's tools (prompts, resources) of it
        self.parts_of: dict[str, dict[str, list[str]]] = {k: {} for k in SERVER_PARTS}
        for k in SERVER_PARTS:
            for n in self.names[k]:
                self.parts_of[k].setdefault(tool_server(n), []).append(n)

    def requests(self) -> Iterator[Request]:
        for proj in self.projects:
            for kind in KINDS:
                for name in self.names[kind]:
                    for verb in self.verbs:
                        yield proj, kind, name, verb

    def objects_of(self, line: Rule) -> list[tuple[str, str]]:
        """The universe's (kind, name) pairs ``line``'s kind and name match."""
        _, _, kind, name, _, _ = line.values
        out: list[tuple[str, str]] = []
        for k in KINDS if kind == ANY else ((kind,) if kind in self.names else ()):
            out.extend((k, n) for n in (self.names[k] if name == ANY else (name,)))
        if kind == "servers":
            for k in SERVER_PARTS:
                parts = self.names[k] if name == ANY else self.parts_of[k].get(name, [])
                out.extend((k, n) for n in parts)
        return out


def names_named(plines: Iterable[Rule | tuple[str, ...]]) -> dict[str, set[str]]:
    """Per kind: the names ``plines`` (rules or their values) give it, the collection, and
    the stand-ins."""
    named: dict[str, set[str]] = {k: {NO_PROJECT, OTHER} for k in KINDS}
    servers: set[str] = set()
    values = (r.values if isinstance(r, Rule) else r for r in plines)
    objects = {(v[2], v[3]) for v in values if v[3] != ANY}
    for kind, name in objects:
        if kind in ("servers", ANY):
            servers.add(name)
        for k in KINDS if kind == ANY else ((kind,) if kind in named else ()):
            named[k].add(name)
    servers |= {tool_server(n) for k in SERVER_PARTS for n in named[k]} - {""}
    for k in SERVER_PARTS:
        named[k] |= {f"{s}__{OTHER}" for s in servers} | {f"{OTHER}__{OTHER}"}
    return named


def _standing_for(
    universe: Universe, local: dict[str, set[str]], kind: str, stand: str
) -> list[str]:
    """The universe's names of ``kind`` a class's lines do not name and that decide exactly
    like the stand-in ``stand`` for the class (no line of theirs tells them apart).

    Every such name of a kind other than tools (prompts, resources) stands with
    ``(other)``; a tool (prompt, resource) with
    ``SERVER__(other)`` when the class names that stand-in, else with ``(other)__(other)``.
    """
    if stand != OTHER and not stand.endswith(f"__{OTHER}"):
        return []
    unnamed = universe.name_sets[kind] - local[kind]
    if kind not in SERVER_PARTS:
        return sorted(unnamed) if stand == OTHER else []
    parts_of = universe.parts_of[kind]
    if stand != f"{OTHER}__{OTHER}":
        return sorted(unnamed.intersection(parts_of.get(stand[: -len(OTHER) - 2], ())))
    for server, tools in parts_of.items():
        if server != OTHER and f"{server}__{OTHER}" in local[kind]:
            unnamed.difference_update(tools)
    return sorted(unnamed)


def _verdict(gained: bool, lost: bool) -> Verdict:
    if gained and lost:
        return "incomparable"
    if gained:
        return "more permissive"
    if lost:
        return "less permissive"
    return "equivalent"


def _result(changes: list[Change], universe: Universe) -> PolicyDiff:
    changes.sort(key=itemgetter(0, 1, 2, 3, 4))  # subject, project, kind, name, verb
    seen = {(c.project, c.gained) for c in changes}
    verdicts = {p: _verdict((p, True) in seen, (p, False) in seen) for p in universe.projects}
    return PolicyDiff(tuple(changes), tuple(universe.projects), verdicts)


def _compare(old: Authorizer, new: Authorizer, subject: str, req: Request) -> Change | None:
    proj, kind, name, verb = req
    if (  # the allowed bit first; reasons only for a change
        old.indexed
        and new.indexed
        and old.index.match(subject, proj, kind, name, verb).allowed
        == new.index.match(subject, proj, kind, name, verb).allowed
    ):
        return None
    a = old.policy_decision(subject, proj, kind, name, verb)
    b = new.policy_decision(subject, proj, kind, name, verb)
    if a.allowed == b.allowed:
        return None
    return Change(subject, proj, kind, name, verb, b.allowed, a, b)


def brute_force(old: Authorizer, new: Authorizer) -> PolicyDiff:
    """Decide every (subject, request) of the universe in both (slow; for the tests)."""
    universe = Universe(old, new)
    changes = [
        c
        for subject in universe.subjects
        for req in universe.requests()
        if (c := _compare(old, new, subject, req)) is not None
    ]
    return _result(changes, universe)


def diff(old: Authorizer, new: Authorizer) -> PolicyDiff:
    """The decisions ``old`` and ``new`` disagree on, over their universe (see the module)."""
    with gc_paused():  # hundreds of thousands of acyclic objects (see gc_paused)
        return _diff(old, new)


def _diff(old: Authorizer, new: Authorizer) -> PolicyDiff:
    universe = Universe(old, new)
    # Lines keyed by their values (hashed in C): a line is in a policy or not, whatever
    # its file and line number.
    old_p = {r.values: r for r in _p(old.rules())}
    new_p = {r.values: r for r in _p(new.rules())}
    both = {**old_p, **new_p}
    changed = old_p.keys() ^ new_p.keys()
    by_sub: dict[str, list[Rule]] = {}
    for values, r in both.items():
        by_sub.setdefault(values[0], []).append(r)
    changed_by_sub: dict[str, list[Rule]] = {}
    for values in changed:
        changed_by_sub.setdefault(values[0], []).append(both[values])
    psubs_old = {v[0] for v in old_p}
    psubs_new = {v[0] for v in new_p}
    acts = {v: (set(old.index.acts_of(v)), set(new.index.acts_of(v))) for v in universe.verbs}
    changed_verbs = [v for v, (a, b) in acts.items() if a != b]
    verbs_of_act: dict[str, list[str]] = {}
    for v, (a, b) in acts.items():
        for act in a | b:
            verbs_of_act.setdefault(act, []).append(v)

    classes: dict[tuple[frozenset[str], frozenset[str]], list[str]] = {}
    for subject in universe.subjects:
        sa = frozenset(psubs_old.intersection(old.index.subjects_of(subject)))
        sb = frozenset(psubs_new.intersection(new.index.subjects_of(subject)))
        classes.setdefault((sa, sb), []).append(subject)

    named_cache: dict[str, dict[str, set[str]]] = {}

    def named_by_sub(sub: str) -> dict[str, set[str]]:
        found = named_cache.get(sub)
        if found is None:
            found = named_cache[sub] = names_named(by_sub.get(sub, ()))
        return found

    changes: list[Change] = []
    for (sa, sb), members in classes.items():
        relevant: dict[Rule, set[str] | None] = {}  # line -> only these verbs (None: any)
        for s in sa | sb:
            for r in changed_by_sub.get(s, ()):
                relevant[r] = None
        for s in sa ^ sb:
            for r in by_sub.get(s, ()):
                relevant[r] = None
        if changed_verbs:
            cv = set(changed_verbs)
            for s in sa | sb:
                for r in by_sub.get(s, ()):
                    if r not in relevant and set(verbs_of_act.get(r.values[4], ())) & cv:
                        relevant[r] = cv
        if not relevant:
            continue
        local = {k: set(base) for k, base in named_by_sub(NO_PROJECT).items()}
        for sub in sa | sb:
            for k, sub_names in named_by_sub(sub).items():
                local[k] |= sub_names
        requests: set[Request] = set()
        for line, only in relevant.items():
            projs = universe.projects if line.values[1] == ANY else (line.values[1],)
            verbs = [v for v in verbs_of_act.get(line.values[4], ()) if only is None or v in only]
            if not verbs:
                continue
            for kind, name in universe.objects_of(line):
                if name not in local[kind]:
                    continue  # decided like its stand-in, which is asked
                for proj in projs:
                    for verb in verbs:
                        requests.add((proj, kind, name, verb))
        rep = members[0]
        standing: dict[tuple[str, str], list[str]] = {}  # (kind, stand-in) -> names it stands for
        for req in sorted(requests):
            c = _compare(old, new, rep, req)
            if c is None:
                continue
            proj, kind, name, verb = req
            # Every member and every name this stand-in stands for decides alike, by the
            # same lines: the representative's decisions are theirs (reasons name `rep`).
            stands = standing.get((kind, name))
            if stands is None:
                stands = standing[(kind, name)] = _standing_for(universe, local, kind, name)
            for n in (name, *stands):
                for subject in members:
                    if subject == rep and n == name:
                        changes.append(c)
                    else:
                        changes.append(Change(subject, proj, kind, n, verb, c.gained, c.old, c.new))
    return _result(changes, universe)
