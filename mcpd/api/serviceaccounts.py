"""/api/v1/serviceaccounts: machine identities and their tokens (rotation, revocation)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from mcpd.api.common import After, Limit
from mcpd.api.deps import CallerDep, DbDep, PrincipalDep, RuntimeDep
from mcpd.schemas.common import Page
from mcpd.schemas.serviceaccounts import (
    ServiceAccountCreated,
    ServiceAccountIn,
    ServiceAccountOut,
    ServiceAccountUpdate,
    TokenIn,
    account_out,
)
from mcpd.services import serviceaccounts as service

router = APIRouter(prefix="/api/v1", tags=["serviceaccounts"])


@router.get(
    "/serviceaccounts", response_model=Page[ServiceAccountOut], response_model_by_alias=True
)
def list_accounts(
    _: PrincipalDep, db: DbDep, limit: Limit = 100, after: After = None
) -> Page[ServiceAccountOut]:
    rows, nxt = service.list_accounts(db=db, limit=limit, after=after)
    return Page[ServiceAccountOut](items=[account_out(a) for a in rows], next=nxt)


@router.post(
    "/serviceaccounts",
    status_code=201,
    response_model=ServiceAccountCreated,
    response_model_by_alias=True,
)
def create_account(
    body: ServiceAccountIn, caller: CallerDep, db: DbDep, rt: RuntimeDep
) -> ServiceAccountCreated:
    """Create an account and its first token; the raw token is in this response only."""
    account, raw = service.create_account(db=db, rt=rt, caller=caller, spec=body)
    assert raw is not None
    out = account_out(account)
    return ServiceAccountCreated(**out.model_dump(), token=raw, token_prefix=out.tokens[-1].prefix)


@router.get(
    "/serviceaccounts/{name}", response_model=ServiceAccountOut, response_model_by_alias=True
)
def get_account(name: str, _: PrincipalDep, db: DbDep) -> ServiceAccountOut:
    return account_out(service.get_account(db=db, name=name))


@router.put(
    "/serviceaccounts/{name}", response_model=ServiceAccountOut, response_model_by_alias=True
)
def update_account(
    name: str, body: ServiceAccountUpdate, caller: CallerDep, db: DbDep, rt: RuntimeDep
) -> ServiceAccountOut:
    change = service.update_account(db=db, rt=rt, caller=caller, name=name, change=body)
    return account_out(change)


@router.post(
    "/serviceaccounts/{name}/tokens",
    status_code=201,
    response_model=ServiceAccountCreated,
    response_model_by_alias=True,
)
def mint_token(
    name: str, body: TokenIn, caller: CallerDep, db: DbDep, rt: RuntimeDep
) -> ServiceAccountCreated:
    """Another token of the account (rotation: both stay valid until one is revoked)."""
    account, cred, raw = service.mint_token(db=db, rt=rt, caller=caller, name=name, ttl=body.ttl)
    out = account_out(account)
    return ServiceAccountCreated(**out.model_dump(), token=raw, token_prefix=cred.prefix)


@router.post(
    "/serviceaccounts/{name}/tokens/{prefix}/revoke",
    response_model=ServiceAccountOut,
    response_model_by_alias=True,
)
def revoke_token(
    name: str, prefix: str, caller: CallerDep, db: DbDep, rt: RuntimeDep
) -> ServiceAccountOut:
    """Revoke one token (by its prefix) at once; the account's others stay valid."""
    account = service.revoke_token(db=db, rt=rt, caller=caller, name=name, prefix=prefix)
    return account_out(account)


@router.delete("/serviceaccounts/{name}", status_code=204)
def delete_account(name: str, caller: CallerDep, db: DbDep, rt: RuntimeDep) -> Response:
    service.delete_account(db=db, rt=rt, caller=caller, name=name)
    return Response(status_code=204)
