"""``policy explain``: a decision with everything that went into it.

:func:`explain` asks :meth:`authz.engine.Authorizer.decide` and adds what a person needs to
see why: the subjects and acts the request reaches through ``g`` and ``g2``, and every
allow and deny line that matches it (the decision names only the one that decided).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from authz.decision import Decision, request_problem
from authz.policy import ALLOW, DENY, Rule

if TYPE_CHECKING:
    from authz.engine import Authorizer

__all__ = ["Explanation", "explain"]


@dataclass(frozen=True, slots=True)
class Explanation:
    """Everything ``policy explain`` shows about one request."""

    decision: Decision
    subjects: tuple[str, ...]
    acts: tuple[str, ...]
    allows: tuple[Rule, ...]
    denies: tuple[Rule, ...]
    notes: tuple[str, ...] = ()


def explain(
    authorizer: Authorizer, subject: str, project: str, kind: str, name: str, action: str
) -> Explanation:
    """The decision with the closures and every matching line, for ``policy explain``.

    The lines are real policy lines (``file:line``): the index's matches, or, when the model
    is not the indexed one, each line the model's matcher accepts (allow and deny alike).
    """
    decision = authorizer.decide(subject, project, kind, name, action)
    if request_problem(subject, project, kind, name, action):
        return Explanation(decision, (subject,), (action,), (), ())
    index = authorizer.index
    # In fallback mode, the lines the model's own matcher accepts, evaluated line by line.
    lines = authorizer.matching_lines(subject, project, kind, name, action)
    notes: list[str] = list(authorizer.model_notes)
    if notes:
        notes.insert(0, "the model differs from the indexed one: plain casbin decided")
    grant = authorizer.token(subject.removeprefix("McpToken:"))
    if grant is not None:
        notes.append(
            f"token {grant.name or grant.sha[:12]} of project {grant.project}, created by "
            f"{grant.creator}: also needs its creator to be allowed"
        )
    return Explanation(
        decision,
        index.subjects_of(subject),
        index.acts_of(action),
        tuple(r for r in lines if r.eft == ALLOW),
        tuple(r for r in lines if r.eft == DENY),
        tuple(notes),
    )
