"""/api/v1/secrets."""

from __future__ import annotations

from fastapi import APIRouter, Response

from mcpd.api.common import After, Limit
from mcpd.api.deps import CallerDep, DbDep, PrincipalDep, RuntimeDep
from mcpd.schemas.common import Page
from mcpd.schemas.secrets import SecretIn, SecretOut, SecretUpdate, secret_out
from mcpd.services import secrets as service

router = APIRouter(prefix="/api/v1", tags=["secrets"])


@router.get("/secrets", response_model=Page[SecretOut], response_model_by_alias=True)
def list_secrets(
    _: PrincipalDep, db: DbDep, limit: Limit = 100, after: After = None
) -> Page[SecretOut]:
    rows, nxt = service.list_secrets(db=db, limit=limit, after=after)
    return Page[SecretOut](items=[secret_out(s) for s in rows], next=nxt)


@router.post("/secrets", status_code=201, response_model=SecretOut, response_model_by_alias=True)
def create_secret(body: SecretIn, caller: CallerDep, db: DbDep, rt: RuntimeDep) -> SecretOut:
    return secret_out(service.create_secret(db=db, rt=rt, caller=caller, spec=body))


@router.get("/secrets/{name}", response_model=SecretOut, response_model_by_alias=True)
def get_secret(name: str, _: PrincipalDep, db: DbDep) -> SecretOut:
    return secret_out(service.get_secret(db=db, name=name))


@router.put("/secrets/{name}", response_model=SecretOut, response_model_by_alias=True)
def update_secret(
    name: str, body: SecretUpdate, caller: CallerDep, db: DbDep, rt: RuntimeDep
) -> SecretOut:
    return secret_out(service.update_secret(db=db, rt=rt, caller=caller, name=name, change=body))


@router.delete("/secrets/{name}", status_code=204)
def delete_secret(name: str, caller: CallerDep, db: DbDep, rt: RuntimeDep) -> Response:
    service.delete_secret(db=db, rt=rt, caller=caller, name=name)
    return Response(status_code=204)
