"""Groups: create, update, delete; a group's members are policy rows (``g`` lines)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from authz import Rule
from mcpd.errors import Invalid
from mcpd.models import Group, GroupMember, User
from mcpd.runtime import Runtime
from mcpd.schemas.groups import GroupIn, GroupUpdate
from mcpd.services.common import check_version, get_or_404, page, taken
from mcpd.services.work import Caller, unit_of_work


def member_rules(group: str, members: list[str]) -> list[Rule]:
    """The ``g`` lines placing ``members`` in ``group`` (the rows of origin ``group/<it>``)."""
    return [Rule("g", (f"User:{m}", f"Group:{group}")) for m in members]


def check_members(db: Session, members: list[str]) -> list[str]:
    """``members`` sorted and deduplicated; 422 naming any user that does not exist."""
    unique = sorted(set(members))
    known = set(db.scalars(select(User.name).where(User.name.in_(unique))))
    unknown = [m for m in unique if m not in known]
    if unknown:
        raise Invalid("members: unknown user(s) " + ", ".join(f"`{u}`" for u in unknown))
    return unique


def check_not_reserved(name: str) -> None:
    """422 for a ``system:*`` group name (``Group:system:*`` is reserved; DnsName refuses
    ``:`` already, this says why and holds for every path that reaches the service)."""
    if name.startswith("system:"):
        raise Invalid(f"name: group `{name}` is reserved for the system")


def list_groups(*, db: Session, limit: int, after: str | None) -> tuple[list[Group], str | None]:
    return page(db, Group, limit, after)


def get_group(*, db: Session, name: str) -> Group:
    group: Group = get_or_404(db, Group, name, "group")
    return group


def create_group(*, db: Session, rt: Runtime, caller: Caller, spec: GroupIn) -> Group:
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="groups", action="create", name=spec.name
    ) as work:
        check_not_reserved(spec.name)
        taken(db, Group, spec.name, "group")
        members = check_members(db, spec.members)
        if members:  # joining a group grants what the group holds: the creator ceiling applies
            work.ceiling_of(f"Group:{spec.name}")
        group = Group(
            name=spec.name,
            created_by=caller.principal.display,
            members=[GroupMember(user_name=m) for m in members],
        )
        db.add(group)
        work.policy.replace(db, f"group/{spec.name}", member_rules(spec.name, members))
        work.audit(detail={"members": members})
    return group


def update_group(
    *, db: Session, rt: Runtime, caller: Caller, name: str, change: GroupUpdate
) -> Group:
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="groups", action="update", name=name
    ) as work:
        group = get_group(db=db, name=name)
        check_version(group, change.version, "group")
        members = check_members(db, change.members)
        before = {m.user_name for m in group.members}
        if set(members) - before:
            work.ceiling_of(f"Group:{name}")
        group.members = [GroupMember(user_name=m) for m in members]
        group.version += 1
        work.policy.replace(db, f"group/{name}", member_rules(name, members))
        added, removed = sorted(set(members) - before), sorted(before - set(members))
        work.audit(detail={"added": added, "removed": removed})
    return group


def delete_group(*, db: Session, rt: Runtime, caller: Caller, name: str) -> None:
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="groups", action="delete", name=name
    ) as work:
        group = get_group(db=db, name=name)
        work.policy.drop(db, f"group/{name}")
        db.delete(group)
        work.audit()


__all__ = [
    "check_members",
    "check_not_reserved",
    "create_group",
    "delete_group",
    "get_group",
    "list_groups",
    "member_rules",
    "update_group",
]
