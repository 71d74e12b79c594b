"""/api/v1/users and /api/v1/groups."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import AfterValidator, Field
from sqlalchemy import delete, select, update

from authz import InvalidName, Rule
from authz.vocabulary import Subject
from mcpd import audit
from mcpd.api.common import (
    After,
    CamelModel,
    DnsName,
    Limit,
    Meta,
    Page,
    check_version,
    get_or_404,
    meta,
    page_query,
    paginate,
    taken,
)
from mcpd.api.deps import DbDep, PrincipalDep, RequestIdDep, RuntimeDep
from mcpd.errors import Invalid
from mcpd.models import Group, GroupMember, McpToken, User, utcnow
from mcpd.runtime import Runtime, token_grant
from mcpd.security import MIN_PASSWORD_LENGTH, hash_password
from mcpd.services.policy import PolicyChange, held_bindings, require_covered

router = APIRouter(prefix="/api/v1", tags=["users"])


def _user_name(v: str) -> str:
    try:
        Subject.parse(f"User:{v}")
    except InvalidName as exc:
        raise ValueError(str(exc)) from exc
    return v


UserName = Annotated[str, AfterValidator(_user_name)]


class UserIn(CamelModel):
    name: UserName
    display_name: str = Field(default="", max_length=255)
    password: str | None = Field(default=None, min_length=MIN_PASSWORD_LENGTH, max_length=1024)
    disabled: bool = False


class UserUpdate(CamelModel):
    display_name: str | None = Field(default=None, max_length=255)
    password: str | None = Field(default=None, min_length=MIN_PASSWORD_LENGTH, max_length=1024)
    disabled: bool | None = None
    version: int | None = Field(default=None, description="optimistic concurrency: 409 if stale")


class UserOut(Meta):
    display_name: str
    disabled: bool


def _user_out(u: User) -> UserOut:
    return UserOut(**meta(u), display_name=u.display_name, disabled=u.disabled)


@router.get("/users", response_model=Page[UserOut], response_model_by_alias=True)
def list_users(
    _: PrincipalDep, db: DbDep, limit: Limit = 100, after: After = None
) -> Page[UserOut]:
    rows, nxt = paginate(db, page_query(User, limit, after), limit)
    return Page[UserOut](items=[_user_out(u) for u in rows], next=nxt)


@router.post("/users", status_code=201, response_model=UserOut, response_model_by_alias=True)
def create_user(
    body: UserIn, p: PrincipalDep, db: DbDep, rt: RuntimeDep, rid: RequestIdDep
) -> UserOut:
    taken(db, User, body.name, "user")
    # bindings that still name this user (e.g. of a deleted user) go to whoever is created
    require_covered(
        rt.authorizer, p.subject, p.display, held_bindings(rt.authorizer, f"User:{body.name}")
    )
    user = User(
        name=body.name,
        display_name=body.display_name,
        password_hash=hash_password(body.password) if body.password else None,
        disabled=body.disabled,
        created_by=p.display,
    )
    db.add(user)
    audit.record(db, p, action="create", kind="users", name=body.name, request_id=rid)
    db.commit()
    return _user_out(user)


@router.get("/users/{name}", response_model=UserOut, response_model_by_alias=True)
def get_user(name: str, _: PrincipalDep, db: DbDep) -> UserOut:
    return _user_out(get_or_404(db, User, name, "user"))


@router.put("/users/{name}", response_model=UserOut, response_model_by_alias=True)
def update_user(
    name: str, body: UserUpdate, p: PrincipalDep, db: DbDep, rt: RuntimeDep, rid: RequestIdDep
) -> UserOut:
    user = get_or_404(db, User, name, "user")
    check_version(user, body.version, "user")
    if body.password is not None and p.user != name:
        # whoever sets a password can log in as that user: only for a caller covering it
        require_covered(
            rt.authorizer, p.subject, p.display, held_bindings(rt.authorizer, f"User:{name}")
        )
    if body.display_name is not None:
        user.display_name = body.display_name
    if body.password is not None:
        user.password_hash = hash_password(body.password)
    if body.disabled is not None:
        user.disabled = body.disabled
    user.version += 1
    changed = sorted(k for k, v in body.model_dump(exclude={"version"}).items() if v is not None)
    audit.record(
        db, p, action="update", kind="users", name=name, request_id=rid, detail={"fields": changed}
    )
    db.commit()
    rt.session_cache.clear()  # a disabled user's sessions end now
    return _user_out(user)


@router.delete("/users/{name}", status_code=204)
def delete_user(
    name: str, p: PrincipalDep, db: DbDep, rt: RuntimeDep, rid: RequestIdDep
) -> Response:
    """Delete a user: its sessions end, its group memberships go, its tokens are revoked."""
    user = get_or_404(db, User, name, "user")
    change = PolicyChange()
    groups = db.scalars(select(Group).join(GroupMember).where(GroupMember.user_name == name)).all()
    db.execute(delete(GroupMember).where(GroupMember.user_name == name))
    for g in groups:
        db.refresh(g)
        change.replace(
            db, f"group/{g.name}", _member_rules(g.name, [m.user_name for m in g.members])
        )
    db.execute(
        update(McpToken)
        .where(McpToken.created_by == name, McpToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    db.delete(user)
    audit.record(db, p, action="delete", kind="users", name=name, request_id=rid)
    db.commit()
    rt.session_cache.clear()  # its sessions went with it
    change.publish(rt.authorizer)
    _refresh_tokens_of(rt, db, name)
    return Response(status_code=204)


def _refresh_tokens_of(rt: Runtime, db: DbDep, creator: str) -> None:
    for t in db.scalars(select(McpToken).where(McpToken.created_by == creator)):
        rt.authorizer.register_token(token_grant(t))


# -- groups ---------------------------------------------------------------------------


class GroupIn(CamelModel):
    name: DnsName
    members: list[UserName] = Field(default_factory=list, max_length=10_000)


class GroupUpdate(CamelModel):
    members: list[UserName]
    version: int | None = None


class GroupOut(Meta):
    members: list[str]


def _group_out(g: Group) -> GroupOut:
    return GroupOut(**meta(g), members=[m.user_name for m in g.members])


def _member_rules(group: str, members: list[str]) -> list[Rule]:
    return [Rule("g", (f"User:{m}", f"Group:{group}")) for m in members]


def _check_members(db: DbDep, members: list[str]) -> list[str]:
    unique = sorted(set(members))
    known = set(db.scalars(select(User.name).where(User.name.in_(unique))))
    unknown = [m for m in unique if m not in known]
    if unknown:
        raise Invalid("members: unknown user(s) " + ", ".join(f"`{u}`" for u in unknown))
    return unique


@router.get("/groups", response_model=Page[GroupOut], response_model_by_alias=True)
def list_groups(
    _: PrincipalDep, db: DbDep, limit: Limit = 100, after: After = None
) -> Page[GroupOut]:
    rows, nxt = paginate(db, page_query(Group, limit, after), limit)
    return Page[GroupOut](items=[_group_out(g) for g in rows], next=nxt)


@router.post("/groups", status_code=201, response_model=GroupOut, response_model_by_alias=True)
def create_group(
    body: GroupIn, p: PrincipalDep, db: DbDep, rt: RuntimeDep, rid: RequestIdDep
) -> GroupOut:
    taken(db, Group, body.name, "group")
    members = _check_members(db, body.members)
    if members:  # joining a group grants what the group holds: the creator ceiling applies
        require_covered(
            rt.authorizer, p.subject, p.display, held_bindings(rt.authorizer, f"Group:{body.name}")
        )
    group = Group(
        name=body.name, created_by=p.display, members=[GroupMember(user_name=m) for m in members]
    )
    db.add(group)
    change = PolicyChange()
    change.replace(db, f"group/{body.name}", _member_rules(body.name, members))
    audit.record(
        db,
        p,
        action="create",
        kind="groups",
        name=body.name,
        request_id=rid,
        detail={"members": members},
    )
    db.commit()
    change.publish(rt.authorizer)
    return _group_out(group)


@router.get("/groups/{name}", response_model=GroupOut, response_model_by_alias=True)
def get_group(name: str, _: PrincipalDep, db: DbDep) -> GroupOut:
    return _group_out(get_or_404(db, Group, name, "group"))


@router.put("/groups/{name}", response_model=GroupOut, response_model_by_alias=True)
def update_group(
    name: str, body: GroupUpdate, p: PrincipalDep, db: DbDep, rt: RuntimeDep, rid: RequestIdDep
) -> GroupOut:
    group = get_or_404(db, Group, name, "group")
    check_version(group, body.version, "group")
    members = _check_members(db, body.members)
    before = {m.user_name for m in group.members}
    if set(members) - before:
        require_covered(
            rt.authorizer, p.subject, p.display, held_bindings(rt.authorizer, f"Group:{name}")
        )
    group.members = [GroupMember(user_name=m) for m in members]
    group.version += 1
    change = PolicyChange()
    change.replace(db, f"group/{name}", _member_rules(name, members))
    audit.record(
        db,
        p,
        action="update",
        kind="groups",
        name=name,
        request_id=rid,
        detail={"added": sorted(set(members) - before), "removed": sorted(before - set(members))},
    )
    db.commit()
    change.publish(rt.authorizer)
    return _group_out(group)


@router.delete("/groups/{name}", status_code=204)
def delete_group(
    name: str, p: PrincipalDep, db: DbDep, rt: RuntimeDep, rid: RequestIdDep
) -> Response:
    group = get_or_404(db, Group, name, "group")
    change = PolicyChange()
    change.drop(db, f"group/{name}")
    db.delete(group)
    audit.record(db, p, action="delete", kind="groups", name=name, request_id=rid)
    db.commit()
    change.publish(rt.authorizer)
    return Response(status_code=204)
