"""Users: create, update (password, disabled), delete (sessions, memberships, tokens go).

Disabling, deleting or changing the password of a user ends all of its login sessions (the
rows go in the same transaction; every replica's session cache notices the ``login_sessions``
table changed, see ``SessionCache``). A disabled user's McpTokens are denied at once
(``TokenGrant.creator_disabled``, streamed to followers and replicas like any token change)
and work again when the user is enabled.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from mcpd.models import Group, GroupMember, LoginSession, McpToken, User, utcnow
from mcpd.runtime import Runtime, token_grant
from mcpd.schemas.users import UserIn, UserUpdate
from mcpd.security import hash_password
from mcpd.services.common import check_version, get_or_404, page, taken
from mcpd.services.groups import member_rules
from mcpd.services.work import Caller, Work, unit_of_work


def list_users(*, db: Session, limit: int, after: str | None) -> tuple[list[User], str | None]:
    return page(db, User, limit, after)


def get_user(*, db: Session, name: str) -> User:
    user: User = get_or_404(db, User, name, "user")
    return user


def create_user(*, db: Session, rt: Runtime, caller: Caller, spec: UserIn) -> User:
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="users", action="create", name=spec.name
    ) as work:
        taken(db, User, spec.name, "user")
        # bindings that still name this user (e.g. of a deleted user) go to whoever is created
        work.ceiling_of(f"User:{spec.name}")
        user = User(
            name=spec.name,
            display_name=spec.display_name,
            password_hash=hash_password(spec.password) if spec.password else None,
            disabled=spec.disabled,
            created_by=caller.principal.display,
        )
        db.add(user)
        work.audit()
    return user


def update_user(*, db: Session, rt: Runtime, caller: Caller, name: str, change: UserUpdate) -> User:
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="users", action="update", name=name
    ) as work:
        user = get_user(db=db, name=name)
        check_version(user, change.version, "user")
        if change.password is not None and caller.principal.user != name:
            # whoever sets a password can log in as that user: only for a caller covering it
            work.ceiling_of(f"User:{name}")
        if change.display_name is not None:
            user.display_name = change.display_name
        if change.password is not None:
            user.password_hash = hash_password(change.password)
        was_disabled = user.disabled
        if change.disabled is not None:
            user.disabled = change.disabled
        user_changed(work, user, was_disabled=was_disabled, password=change.password is not None)
        user.version += 1
        changed = sorted(
            k for k, v in change.model_dump(exclude={"version"}).items() if v is not None
        )
        work.audit(detail={"fields": changed})
    return user


def user_changed(work: Work, user: User, *, was_disabled: bool, password: bool) -> None:
    """What a change to ``user`` sets off, on every path that writes one (the API, restore,
    apply): a new password or a disable ends all its sessions (on every replica: the
    session cache forgets them); a disable, or an enable, reaches its tokens at once."""
    if password or user.disabled:
        end_sessions(work.db, user)
        work.after_commit(work.rt.session_cache.clear, before_policy=True)
    if user.disabled != was_disabled:
        db, rt, name = work.db, work.rt, user.name
        work.after_commit(lambda: _refresh_tokens_of(db, rt, name), before_policy=True)


def end_sessions(db: Session, user: User) -> None:
    """Delete every login session of ``user`` (in the caller's transaction)."""
    db.execute(delete(LoginSession).where(LoginSession.user_id == user.id))


def delete_user(*, db: Session, rt: Runtime, caller: Caller, name: str) -> None:
    """Delete a user: its sessions end, its group memberships go, its tokens are revoked."""
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="users", action="delete", name=name
    ) as work:
        user = get_user(db=db, name=name)
        groups = db.scalars(
            select(Group).join(GroupMember).where(GroupMember.user_name == name)
        ).all()
        db.execute(delete(GroupMember).where(GroupMember.user_name == name))
        for g in groups:
            db.refresh(g)
            members = [m.user_name for m in g.members]
            work.policy.replace(db, f"group/{g.name}", member_rules(g.name, members))
        db.execute(
            update(McpToken)
            .where(McpToken.created_by == name, McpToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        end_sessions(db, user)
        db.delete(user)
        work.audit()
        work.after_commit(rt.session_cache.clear, before_policy=True)  # its sessions went
        work.after_commit(lambda: _refresh_tokens_of(db, rt, name))


def _refresh_tokens_of(db: Session, rt: Runtime, creator: str) -> None:
    for t in db.scalars(select(McpToken).where(McpToken.created_by == creator)):
        rt.authorizer.register_token(token_grant(t))


__all__ = [
    "create_user",
    "delete_user",
    "end_sessions",
    "get_user",
    "list_users",
    "update_user",
    "user_changed",
]
