"""The creator ceiling: what a would-be granter lacks of what it grants.

SPEC §4: creating an McpToken or an RbacDefinition with bindings is refused unless the
caller holds every permission it grants. :func:`covers` is that check as a pure function
over an :class:`~authz.engine.Authorizer` (mcpd's policy service turns what it returns into
a 403 listing each :class:`Missing`); :func:`clone_bindings` is what a token of rbac mode
``clone`` receives. The *continuous* ceiling - a token is allowed only what its creator
is allowed now - is part of :meth:`~authz.engine.Authorizer.decide` itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from authz.bindings import RoleBinding
from authz.decision import rule_ref
from authz.policy import DENY, Rule
from authz.vocabulary import ANY

if TYPE_CHECKING:
    from authz.engine import Authorizer

__all__ = ["Missing", "clone_bindings", "covers"]


@dataclass(frozen=True, slots=True)
class Missing:
    """A permission a binding grants that its would-be granter does not hold."""

    binding: RoleBinding
    verb: str
    reason: str

    def __str__(self) -> str:
        where = "" if self.binding.is_operation else f" on {self.binding.kind}/{self.binding.name}"
        proj = "every project" if self.binding.project == ANY else f"project {self.binding.project}"
        return f"{self.verb}{where} in {proj} ({self.reason})"


def covers(authorizer: Authorizer, holder: str, requested: Iterable[RoleBinding]) -> list[Missing]:
    """The permissions in ``requested`` that ``holder`` does not hold now (empty: covered).

    Each binding is expanded to its verbs and checked with
    :meth:`~authz.engine.Authorizer.decide` on the binding's own scope, where ``*`` is
    asked as a literal: holding ``edit`` on ``servers/*`` covers ``servers/foo``, but
    ``servers/foo`` does not cover ``servers/*``. A deny line of the holder's that falls
    inside a wildcard scope also counts as missing, so a grant can never reach what the
    holder is denied.
    """
    missing: list[Missing] = []
    for binding in requested:
        kind = ANY if binding.is_operation else binding.kind
        for verb in sorted(authorizer.verbs_of(binding.grant)):
            d = authorizer.decide(holder, binding.project, kind, binding.name, verb)
            if not d.allowed:
                missing.append(Missing(binding, verb, d.reason))
                continue
            deny = _denied_inside(authorizer, holder, binding, kind, verb)
            if deny is not None:
                missing.append(Missing(binding, verb, f"denied in part by {rule_ref(deny)}"))
    return missing


def _denied_inside(
    authorizer: Authorizer, holder: str, b: RoleBinding, kind: str, verb: str
) -> Rule | None:
    if ANY not in (b.project, kind, b.name):
        return None
    index = authorizer.index
    subjects = index.subjects_of(holder)
    acts = set(index.acts_of(verb))
    for rule in index.p_rules(subjects):
        if rule.eft != DENY or rule.values[4] not in acts:
            continue
        _, proj, rkind, rname, _, _ = rule.values
        if _overlaps(b.project, proj) and _overlaps(kind, rkind) and _overlaps(b.name, rname):
            return rule
    return None


def _overlaps(a: str, b: str) -> bool:
    return ANY in (a, b) or a == b


def clone_bindings(authorizer: Authorizer, creator: str, project: str) -> list[RoleBinding]:
    """The creator's bindings that apply in ``project``, scoped to it (token mode clone)."""
    index = authorizer.index
    out: list[RoleBinding] = []
    for rule in index.p_rules(index.subjects_of(creator)):
        binding = RoleBinding.from_rule(rule)
        if binding is None or binding.project not in (ANY, project):
            continue
        scoped = binding.in_project(project)
        if scoped not in out:
            out.append(scoped)
    return out
