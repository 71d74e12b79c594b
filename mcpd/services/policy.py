"""Writing policy rows with the object they belong to, and publishing them after commit;
parsing subjects and bindings; the creator ceiling."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from authz import Authorizer, BindingError, InvalidName, RoleBinding, Rule
from authz.vocabulary import Subject
from mcpd.errors import Forbidden, Invalid
from mcpd.policystore import delete_rules, write_rules


@dataclass
class PolicyChange:
    """Rows added and removed in the current transaction; applied to the enforcer after commit."""

    added: list[Rule] = field(default_factory=list)
    removed: list[Rule] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)

    def replace(self, session: Session, origin: str, rules: Iterable[Rule]) -> None:
        self.removed += delete_rules(session, origin=origin)
        self.added += write_rules(session, rules, origin=origin)

    def drop(self, session: Session, origin: str) -> None:
        self.removed += delete_rules(session, origin=origin)

    def publish(self, authorizer: Authorizer) -> None:
        if self.added or self.removed:
            authorizer.apply(added=self.added, removed=self.removed)
        for fn in self.after:
            fn()


def parse_subjects(values: Iterable[str]) -> list[str]:
    out = []
    for v in values:
        try:
            out.append(str(Subject.parse(v)))
        except InvalidName as exc:
            raise Invalid(str(exc)) from exc
    if len(set(out)) != len(out):
        raise Invalid("subjects: a subject is listed twice")
    return out


def parse_bindings(authorizer: Authorizer, values: Iterable[str]) -> list[RoleBinding]:
    out: list[RoleBinding] = []
    for v in values:
        try:
            b = authorizer.parse_binding(v)
        except BindingError as exc:
            raise Invalid(str(exc)) from exc
        if b not in out:
            out.append(b)
    return out


def require_covered(
    authorizer: Authorizer, holder: str, who: str, bindings: Iterable[RoleBinding]
) -> None:
    """The creator ceiling: refuse (403, listing each missing permission) to grant more
    than ``holder`` holds itself."""
    missing = authorizer.covers(holder, bindings)
    if missing:
        raise Forbidden(
            f"{who} cannot grant permissions it does not hold: "
            + "; ".join(str(m) for m in missing),
            missing=[
                {"binding": str(m.binding), "verb": m.verb, "reason": m.reason} for m in missing
            ],
        )


def held_bindings(authorizer: Authorizer, subject: str) -> list[RoleBinding]:
    """Every allow binding ``subject`` holds, directly or through its groups.

    Becoming that subject - joining a group, setting a user's password, creating a user
    whose name old bindings still mention - gains all of these, so the creator ceiling
    applies to them."""
    out = []
    for rule in authorizer.index.p_rules(authorizer.index.subjects_of(subject)):
        b = RoleBinding.from_rule(rule)
        if b is not None:
            out.append(b)
    return out


__all__ = ["PolicyChange", "held_bindings", "parse_bindings", "parse_subjects", "require_covered"]
