"""/api/v1/users."""

from __future__ import annotations

from fastapi import APIRouter, Response

from mcpd.api.common import After, Limit
from mcpd.api.deps import CallerDep, DbDep, PrincipalDep, RuntimeDep
from mcpd.schemas.common import Page
from mcpd.schemas.users import UserIn, UserOut, UserUpdate, user_out
from mcpd.services import users as service

router = APIRouter(prefix="/api/v1", tags=["users"])


@router.get("/users", response_model=Page[UserOut], response_model_by_alias=True)
def list_users(
    _: PrincipalDep, db: DbDep, limit: Limit = 100, after: After = None
) -> Page[UserOut]:
    rows, nxt = service.list_users(db=db, limit=limit, after=after)
    return Page[UserOut](items=[user_out(u) for u in rows], next=nxt)


@router.post("/users", status_code=201, response_model=UserOut, response_model_by_alias=True)
def create_user(body: UserIn, caller: CallerDep, db: DbDep, rt: RuntimeDep) -> UserOut:
    return user_out(service.create_user(db=db, rt=rt, caller=caller, spec=body))


@router.get("/users/{name}", response_model=UserOut, response_model_by_alias=True)
def get_user(name: str, _: PrincipalDep, db: DbDep) -> UserOut:
    return user_out(service.get_user(db=db, name=name))


@router.put("/users/{name}", response_model=UserOut, response_model_by_alias=True)
def update_user(
    name: str, body: UserUpdate, caller: CallerDep, db: DbDep, rt: RuntimeDep
) -> UserOut:
    return user_out(service.update_user(db=db, rt=rt, caller=caller, name=name, change=body))


@router.delete("/users/{name}", status_code=204)
def delete_user(name: str, caller: CallerDep, db: DbDep, rt: RuntimeDep) -> Response:
    """Delete a user: its sessions end, its group memberships go, its tokens are revoked."""
    service.delete_user(db=db, rt=rt, caller=caller, name=name)
    return Response(status_code=204)
