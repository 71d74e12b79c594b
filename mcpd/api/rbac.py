"""/api/v1/rbac: RbacDefinitions (subjects x role bindings), behind the creator ceiling."""

from __future__ import annotations

from fastapi import APIRouter, Response

from mcpd.api.common import After, Limit
from mcpd.api.deps import CallerDep, DbDep, PrincipalDep, RuntimeDep
from mcpd.schemas.common import Page
from mcpd.schemas.rbac import RbacIn, RbacOut, RbacUpdate, rbac_out
from mcpd.services import rbac as service

router = APIRouter(prefix="/api/v1", tags=["rbac"])


@router.get("/rbac", response_model=Page[RbacOut], response_model_by_alias=True)
def list_rbac(_: PrincipalDep, db: DbDep, limit: Limit = 100, after: After = None) -> Page[RbacOut]:
    rows, nxt = service.list_rbac(db=db, limit=limit, after=after)
    return Page[RbacOut](items=[rbac_out(r) for r in rows], next=nxt)


@router.post("/rbac", status_code=201, response_model=RbacOut, response_model_by_alias=True)
def create_rbac(body: RbacIn, caller: CallerDep, db: DbDep, rt: RuntimeDep) -> RbacOut:
    return rbac_out(service.create_rbac(db=db, rt=rt, caller=caller, spec=body))


@router.get("/rbac/{name}", response_model=RbacOut, response_model_by_alias=True)
def get_rbac(name: str, _: PrincipalDep, db: DbDep) -> RbacOut:
    return rbac_out(service.get_rbac(db=db, name=name))


@router.put("/rbac/{name}", response_model=RbacOut, response_model_by_alias=True)
def update_rbac(
    name: str, body: RbacUpdate, caller: CallerDep, db: DbDep, rt: RuntimeDep
) -> RbacOut:
    return rbac_out(service.update_rbac(db=db, rt=rt, caller=caller, name=name, change=body))


@router.delete("/rbac/{name}", status_code=204)
def delete_rbac(name: str, caller: CallerDep, db: DbDep, rt: RuntimeDep) -> Response:
    service.delete_rbac(db=db, rt=rt, caller=caller, name=name)
    return Response(status_code=204)
