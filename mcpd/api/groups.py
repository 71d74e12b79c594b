"""/api/v1/groups."""

from __future__ import annotations

from fastapi import APIRouter, Response

from mcpd.api.common import After, Limit
from mcpd.api.deps import CallerDep, DbDep, PrincipalDep, RuntimeDep
from mcpd.schemas.common import Page
from mcpd.schemas.groups import GroupIn, GroupOut, GroupUpdate, group_out
from mcpd.services import groups as service

router = APIRouter(prefix="/api/v1", tags=["users"])


@router.get("/groups", response_model=Page[GroupOut], response_model_by_alias=True)
def list_groups(
    _: PrincipalDep, db: DbDep, limit: Limit = 100, after: After = None
) -> Page[GroupOut]:
    rows, nxt = service.list_groups(db=db, limit=limit, after=after)
    return Page[GroupOut](items=[group_out(g) for g in rows], next=nxt)


@router.post("/groups", status_code=201, response_model=GroupOut, response_model_by_alias=True)
def create_group(body: GroupIn, caller: CallerDep, db: DbDep, rt: RuntimeDep) -> GroupOut:
    return group_out(service.create_group(db=db, rt=rt, caller=caller, spec=body))


@router.get("/groups/{name}", response_model=GroupOut, response_model_by_alias=True)
def get_group(name: str, _: PrincipalDep, db: DbDep) -> GroupOut:
    return group_out(service.get_group(db=db, name=name))


@router.put("/groups/{name}", response_model=GroupOut, response_model_by_alias=True)
def update_group(
    name: str, body: GroupUpdate, caller: CallerDep, db: DbDep, rt: RuntimeDep
) -> GroupOut:
    return group_out(service.update_group(db=db, rt=rt, caller=caller, name=name, change=body))


@router.delete("/groups/{name}", status_code=204)
def delete_group(name: str, caller: CallerDep, db: DbDep, rt: RuntimeDep) -> Response:
    service.delete_group(db=db, rt=rt, caller=caller, name=name)
    return Response(status_code=204)
