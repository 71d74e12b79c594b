"""``policy who-can``: every subject a request is allowed to, walking the role graph.

For a request (verb, kind/name, project) :func:`who_can` takes the ``p`` lines that match
its verb and scope (whatever their subject), then walks the ``g`` graph *down* from each
line's subject - as far as Casbin walks it up (``max_depth - 1`` links) - to every user,
group and token that reaches it. A subject is allowed when it reaches a matching allow
and no matching deny; a subject that reaches both is listed as denied, with the deny.
The deciding lines are the ones Casbin would cite: the first in policy order. No subject
is enforced one by one. Tokens also follow SPEC §4's token rules: their own project only,
not revoked or expired, and their creator allowed the same request (looked up in the
same walk).

When the model is not the indexed one (fallback), every subject the policy names is
asked instead (plain Casbin cannot be walked).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from authz.decision import request_problem
from authz.engine import Authorizer
from authz.errors import InvalidName
from authz.policy import DENY, Rule
from authz.vocabulary import NO_PROJECT
from authz.wire import rule_json

__all__ = ["Access", "WhoCan", "who_can", "who_can_json"]


@dataclass(frozen=True, slots=True)
class Access:
    """One subject's answer: allowed or not, the deciding line and the path to it."""

    subject: str
    allowed: bool
    rule: Rule | None  # the deciding line (the first allow; for a denied subject the deny)
    path: tuple[str, ...]  # subject -> group -> ... -> the line's subject -> its act
    note: str = ""  # why a token is denied despite its lines, e.g. its creator is not allowed


@dataclass(frozen=True, slots=True)
class WhoCan:
    verb: str
    kind: str
    name: str
    project: str
    allowed: tuple[Access, ...]
    denied: tuple[Access, ...]  # subjects with a matching allow that a deny (or rule) overrides


def _reach(down: dict[str, set[str]], start: str, depth: int) -> dict[str, str]:
    """Every node at most ``depth`` links below ``start``: node -> the node above it on a
    shortest path (``start`` -> itself)."""
    back = {start: start}
    frontier = [start]
    for _ in range(depth):
        nxt = []
        for node in frontier:
            for child in sorted(down.get(node, ())):
                if child not in back:
                    back[child] = node
                    nxt.append(child)
        if not nxt:
            break
        frontier = nxt
    return back


def _path(back: dict[str, str], node: str, act: str) -> tuple[str, ...]:
    out = [node]
    while back[out[-1]] != out[-1]:
        out.append(back[out[-1]])
    return (*out, act)


def who_can(authorizer: Authorizer, verb: str, kind: str, name: str, project: str) -> WhoCan:
    """Every subject allowed ``verb`` on ``kind/name`` in ``project``, and those denied."""
    problem = request_problem("User:x", project, kind, name, verb)
    if problem:
        raise InvalidName(f"invalid request: {problem}")
    if not authorizer.indexed:
        return _brute(authorizer, verb, kind, name, project)
    index = authorizer.index
    down = index.children("g")
    depth = index.max_depth - 1
    best_allow: dict[str, tuple[int, Rule, tuple[str, ...]]] = {}
    best_deny: dict[str, tuple[int, Rule, tuple[str, ...]]] = {}
    reached: dict[str, dict[str, str]] = {}
    for pos, rule in index.lines_for(verb, project, kind, name):
        back = reached.get(rule.sub)
        if back is None:
            back = reached[rule.sub] = _reach(down, rule.sub, depth)
        best = best_deny if rule.eft == DENY else best_allow
        for subject in back:
            if subject not in best:  # lines come in policy order: the first one decides
                best[subject] = (pos, rule, _path(back, subject, rule.values[4]))
    allowed: dict[str, Access] = {}
    denied: dict[str, Access] = {}
    for subject, (_, rule, path) in best_allow.items():
        deny = best_deny.get(subject)
        if deny is not None:
            denied[subject] = Access(subject, False, deny[1], deny[2])
        else:
            allowed[subject] = Access(subject, True, rule, path)
    for subject in [s for s in allowed if s.startswith("McpToken:")]:
        note = _token_problem(authorizer, subject, project, allowed)
        if note:
            denied[subject] = Access(subject, False, allowed[subject].rule, (), note)
            del allowed[subject]
    return WhoCan(
        verb,
        kind,
        name,
        project,
        tuple(allowed[s] for s in sorted(allowed)),
        tuple(denied[s] for s in sorted(denied)),
    )


def _token_problem(
    authorizer: Authorizer, subject: str, project: str, allowed: dict[str, Access]
) -> str:
    grant = authorizer.token(subject.removeprefix("McpToken:"))
    if grant is None:
        return "unknown token"
    if grant.revoked:
        return "token is revoked"
    if grant.expires_at is not None and grant.expires_at <= time.time():
        return "token has expired"
    if grant.project != project:
        where = "outside any project" if project == NO_PROJECT else f"in project {project}"
        return f"token of project {grant.project} cannot act {where}"
    if grant.creator not in allowed or grant.creator.startswith("McpToken:"):
        return f"token's creator {grant.creator} is not allowed this now"
    return ""


def _brute(authorizer: Authorizer, verb: str, kind: str, name: str, project: str) -> WhoCan:
    subjects: set[str] = set()
    for rule in authorizer.rules():
        if rule.ptype == "p":
            subjects.add(rule.sub)
        elif rule.ptype == "g":
            subjects.update(rule.values)
    allowed, denied = [], []
    for subject in sorted(subjects):
        d = authorizer.decide(subject, project, kind, name, verb)
        if d.allowed:
            allowed.append(Access(subject, True, d.rule, (subject,)))
        elif d.rule is not None:
            denied.append(Access(subject, False, d.rule, (subject,)))
    return WhoCan(verb, kind, name, project, tuple(allowed), tuple(denied))


def who_can_json(result: WhoCan) -> dict[str, Any]:
    """The ``WhoCan`` document's body (``-o json``, schema version 1)."""

    def access(a: Access) -> dict[str, Any]:
        return {
            "subject": a.subject,
            "allowed": a.allowed,
            "path": list(a.path),
            "line": rule_json(a.rule),
            "note": a.note or None,
        }

    return {
        "request": {
            "verb": result.verb,
            "kind": result.kind,
            "name": result.name,
            "project": result.project,
        },
        "allowed": [access(a) for a in result.allowed],
        "denied": [access(a) for a in result.denied],
    }
