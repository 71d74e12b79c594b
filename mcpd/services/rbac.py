"""RbacDefinitions: subjects x role bindings, behind the creator ceiling."""

from __future__ import annotations

from sqlalchemy.orm import Session

from authz import RoleBinding, Rule
from mcpd.errors import Forbidden, Invalid
from mcpd.models import RbacDefinition
from mcpd.runtime import Runtime
from mcpd.schemas.rbac import RbacIn, RbacUpdate
from mcpd.services.common import check_version, get_or_404, page, taken
from mcpd.services.policy import parse_bindings, parse_subjects
from mcpd.services.work import Caller, Work, unit_of_work

RESERVED_GROUP_PREFIX = "Group:system:"


def is_reserved_subject(subject: str) -> bool:
    """``Group:system:*`` subjects are the system's (``Group:system:mcptokens``): nobody
    binds them, creates them, joins them or renames anything into them."""
    return subject.startswith(RESERVED_GROUP_PREFIX)


def rules_of(subjects: list[str], bindings: list[RoleBinding]) -> list[Rule]:
    """The ``p`` lines of a definition: every binding for every subject."""
    return [b.to_rule(s) for s in subjects for b in bindings]


def validated(
    work: Work, subjects: list[str], bindings: list[str]
) -> tuple[list[str], list[RoleBinding]]:
    """Subjects and bindings parsed (422 if malformed), within the caller's ceiling (403)."""
    subs = parse_subjects(subjects)
    reserved = [s for s in subs if is_reserved_subject(s)]
    if reserved:
        raise Invalid(
            f"subjects: `{reserved[0]}` is reserved (`{RESERVED_GROUP_PREFIX}*` groups are the "
            "system's own, e.g. every McpToken's) and cannot be bound"
        )
    if any(s.startswith("McpToken:") for s in subs):
        raise Invalid("subjects: bind a token with `mcpctl create mcptoken --bind`, not rbac")
    parsed = parse_bindings(work.rt.authorizer, bindings)
    work.ceiling(parsed)
    return subs, parsed


def _refuse_if_a_tokens(rbac: RbacDefinition) -> None:
    if rbac.token_id is not None:
        raise Forbidden(
            "this definition belongs to an McpToken: revoke or delete the token instead"
        )


def list_rbac(
    *, db: Session, limit: int, after: str | None
) -> tuple[list[RbacDefinition], str | None]:
    return page(db, RbacDefinition, limit, after)


def get_rbac(*, db: Session, name: str) -> RbacDefinition:
    rbac: RbacDefinition = get_or_404(db, RbacDefinition, name, "rbac definition")
    return rbac


def create_rbac(*, db: Session, rt: Runtime, caller: Caller, spec: RbacIn) -> RbacDefinition:
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="rbac", action="create", name=spec.name
    ) as work:
        taken(db, RbacDefinition, spec.name, "rbac definition")
        subjects, bindings = validated(work, spec.subjects, spec.role_bindings)
        rbac = RbacDefinition(
            name=spec.name,
            subjects=subjects,
            role_bindings=[str(b) for b in bindings],
            created_by=caller.principal.display,
        )
        db.add(rbac)
        work.policy.replace(db, f"rbac/{spec.name}", rules_of(subjects, bindings))
        work.audit(detail={"subjects": subjects, "roleBindings": rbac.role_bindings})
    return rbac


def update_rbac(
    *, db: Session, rt: Runtime, caller: Caller, name: str, change: RbacUpdate
) -> RbacDefinition:
    with unit_of_work(db=db, rt=rt, caller=caller, kind="rbac", action="update", name=name) as work:
        rbac = get_rbac(db=db, name=name)
        _refuse_if_a_tokens(rbac)
        check_version(rbac, change.version, "rbac definition")
        subjects, bindings = validated(work, change.subjects, change.role_bindings)
        rbac.subjects, rbac.role_bindings = subjects, [str(b) for b in bindings]
        rbac.version += 1
        work.policy.replace(db, f"rbac/{name}", rules_of(subjects, bindings))
        work.audit(detail={"subjects": subjects, "roleBindings": rbac.role_bindings})
    return rbac


def delete_rbac(*, db: Session, rt: Runtime, caller: Caller, name: str) -> None:
    with unit_of_work(db=db, rt=rt, caller=caller, kind="rbac", action="delete", name=name) as work:
        rbac = get_rbac(db=db, name=name)
        _refuse_if_a_tokens(rbac)
        work.policy.drop(db, f"rbac/{name}")
        db.delete(rbac)
        work.audit()


__all__ = [
    "RESERVED_GROUP_PREFIX",
    "create_rbac",
    "delete_rbac",
    "get_rbac",
    "is_reserved_subject",
    "list_rbac",
    "rules_of",
    "update_rbac",
    "validated",
]
