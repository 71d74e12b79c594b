"""The answer to one authorization question, and how its reason is worded.

:class:`Decision` is what :meth:`authz.engine.Authorizer.decide` returns: allowed or not,
the reason, and the policy line that decided. The helpers here turn a match of the
index into that answer (naming the line as ``file:line``) and refuse malformed requests
before anything is looked up.
"""

from __future__ import annotations

from dataclasses import dataclass

from authz.errors import AuthzError
from authz.index import Match
from authz.policy import Rule
from authz.vocabulary import (
    ANY,
    KINDS,
    NO_PROJECT,
    SERVER_PARTS,
    Subject,
    check_dns_label,
    check_object_name,
    check_verb,
    is_subject,
)

__all__ = ["Decision", "decision_for", "request_problem", "rule_ref", "target"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one authorization question."""

    allowed: bool
    reason: str
    rule: Rule | None = None  # the policy line that decided, if one did

    def __bool__(self) -> bool:
        return self.allowed


def rule_ref(rule: Rule) -> str:
    """A policy line as reasons quote it: the line in backticks, then where it came from."""
    return f"`{rule}` ({rule.source})" if rule.source else f"`{rule}`"


def target(proj: str, kind: str, name: str) -> str:
    obj = kind if name == "" else f"{kind}/{name}"
    where = (
        "outside any project"
        if proj == NO_PROJECT
        else ("in every project" if proj == ANY else f"in project {proj}")
    )
    return f"{obj} {where}"


def request_problem(subject: str, project: str, kind: str, name: str, action: str) -> str | None:
    """What is wrong with a request's values, or None if they are well formed."""
    try:
        if not is_subject(subject):
            Subject.parse(subject)  # raises, naming what is wrong
        if project not in (NO_PROJECT, ANY):
            check_dns_label(project, "project")
        if kind != ANY and kind not in KINDS:
            return f"unknown resource kind `{kind}`"
        if name not in (NO_PROJECT, ANY):
            check_object_name(name, kind if kind in SERVER_PARTS else None, asked=True)
        check_verb(action)
    except AuthzError as exc:
        return str(exc)
    return None


def decision_for(m: Match, sub: str, proj: str, kind: str, name: str, act: str) -> Decision:
    """The decision a match stands for: a deny line wins, then an allow line, else no line."""
    if m.deny is not None:
        return Decision(False, f"denied by {rule_ref(m.deny)}", m.deny)
    if m.allow is not None:
        via = []
        if m.allow.sub != sub:
            via.append(f"{sub} is in {m.allow.sub}")
        if m.allow.values[4] != act:
            via.append(f"{m.allow.values[4]} includes {act}")
        extra = f" ({'; '.join(via)})" if via else ""
        return Decision(True, f"allowed by {rule_ref(m.allow)}{extra}", m.allow)
    return Decision(False, f"no policy line allows {sub} to {act} {target(proj, kind, name)}")
