"""``can-i --list``: a subject's access list, like ``kubectl auth can-i --list``.

Every ``p`` line that can decide for the subject - its own and those of every group it
reaches through ``g`` (as far as Casbin follows) - as (project, kind, name) x the verbs the
line's role or operation includes, allows and denies apart, each with its line and the
subject the line names. A request is allowed exactly when an allow entry covers it and no
deny entry does (the index's rule; tests/authz hold it equal to ``decide``). Tokens are
further limited by their own project and their creator's access (SPEC §4), shown as a note.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authz.engine import Authorizer
from authz.errors import PolicyError
from authz.policy import ALLOW, Rule
from authz.vocabulary import ANY, Subject
from authz.wire import rule_json

__all__ = ["AccessList", "Grant", "access_list", "access_list_json"]


@dataclass(frozen=True, slots=True)
class Grant:
    """One line of an access list."""

    project: str  # "*": every project
    kind: str
    name: str  # "*": every object of the kind
    verbs: tuple[str, ...]
    allowed: bool  # an allow line; False: a deny
    via: str  # the subject the line names (the subject itself or one of its groups)
    rule: Rule


@dataclass(frozen=True, slots=True)
class AccessList:
    subject: str
    project: str | None  # None: every project
    allowed: tuple[Grant, ...]
    denied: tuple[Grant, ...]
    note: str = ""


def access_list(authorizer: Authorizer, subject: str, project: str | None = None) -> AccessList:
    """``subject``'s access list (only the lines that apply in ``project``, when given)."""
    Subject.parse(subject)
    if not authorizer.indexed:
        raise PolicyError(
            "the access list reads the indexed model; this model differs from it: "
            + "; ".join(authorizer.model_notes)
        )
    index = authorizer.index
    verbs: dict[str, tuple[str, ...]] = {}
    allowed: list[Grant] = []
    denied: list[Grant] = []
    for rule in index.p_rules(index.subjects_of(subject)):
        sub, proj, kind, name, act, eft = rule.values
        if project is not None and proj not in (project, ANY):
            continue
        if act not in verbs:
            verbs[act] = tuple(sorted(authorizer.verbs_of(act)))
        grant = Grant(proj, kind, name, verbs[act], eft == ALLOW, sub, rule)
        (allowed if grant.allowed else denied).append(grant)
    note = ""
    if subject.startswith("McpToken:"):
        grant_ = authorizer.token(subject.removeprefix("McpToken:"))
        note = (
            "unknown token"
            if grant_ is None
            else f"a token acts only in project {grant_.project}, and only where its "
            f"creator {grant_.creator} is allowed too"
        )
    return AccessList(subject, project, tuple(allowed), tuple(denied), note)


def access_list_json(result: AccessList) -> dict[str, Any]:
    """The ``AccessList`` document's body (``-o json``, schema version 1)."""

    def grant(g: Grant) -> dict[str, Any]:
        return {
            "project": g.project,
            "kind": g.kind,
            "name": g.name,
            "verbs": list(g.verbs),
            "via": g.via,
            "line": rule_json(g.rule),
        }

    return {
        "subject": result.subject,
        "project": result.project,
        "allowed": [grant(g) for g in result.allowed],
        "denied": [grant(g) for g in result.denied],
        "note": result.note or None,
    }
