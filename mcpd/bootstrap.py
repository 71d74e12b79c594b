"""The first admin: created on an empty database from settings, never with a default password."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from authz import Authorizer, Rule
from mcpd.models import Group, GroupMember, User
from mcpd.security import MIN_PASSWORD_LENGTH, hash_password
from mcpd.services.policy import PolicyChange

log = logging.getLogger("mcpd")

ADMINS_GROUP = "admins"  # bound to role:admin on everything by policies/bindings.csv


def bootstrap_admin(session: Session, authorizer: Authorizer, name: str, password: str) -> bool:
    """Create ``name`` as a member of group admins if the database has no user yet."""
    if session.scalars(select(User.id)).first() is not None:
        return False
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(
            f"the bootstrap password must have at least {MIN_PASSWORD_LENGTH} characters"
        )
    session.add(User(name=name, password_hash=hash_password(password), created_by="bootstrap"))
    group = session.scalars(select(Group).where(Group.name == ADMINS_GROUP)).first()
    if group is None:
        group = Group(name=ADMINS_GROUP, created_by="bootstrap")
        session.add(group)
    group.members = [*group.members, GroupMember(user_name=name)]
    change = PolicyChange()
    change.replace(
        session,
        f"group/{ADMINS_GROUP}",
        [Rule("g", (f"User:{m.user_name}", f"Group:{ADMINS_GROUP}")) for m in group.members],
    )
    session.commit()
    change.publish(authorizer)
    log.info("created bootstrap admin %s (member of group %s)", name, ADMINS_GROUP)
    return True
