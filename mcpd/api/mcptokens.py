"""/api/v1/mcptokens: project-scoped bearer tokens for MCP clients."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from mcpd.api.common import After, Limit
from mcpd.api.deps import CallerDep, DbDep, PrincipalDep, RuntimeDep
from mcpd.models import McpToken
from mcpd.schemas.common import Page
from mcpd.schemas.mcptokens import TokenCreated, TokenIn, TokenOut, token_out
from mcpd.services import mcptokens as service

router = APIRouter(prefix="/api/v1", tags=["mcptokens"])


def _out(db: Session, t: McpToken) -> TokenOut:
    return token_out(t, service.bindings_of(db, t))


@router.get("/mcptokens", response_model=Page[TokenOut], response_model_by_alias=True)
def list_tokens(
    _: PrincipalDep,
    db: DbDep,
    project: Annotated[str | None, Query(max_length=63)] = None,
    limit: Limit = 100,
    after: After = None,
) -> Page[TokenOut]:
    rows, nxt = service.list_tokens(db=db, project=project, limit=limit, after=after)
    return Page[TokenOut](items=[_out(db, t) for t in rows], next=nxt)


@router.post(
    "/mcptokens", status_code=201, response_model=TokenCreated, response_model_by_alias=True
)
def create_token(body: TokenIn, caller: CallerDep, db: DbDep, rt: RuntimeDep) -> TokenCreated:
    """Create a token; its raw value is in this response only."""
    token, raw = service.create_token(db=db, rt=rt, caller=caller, spec=body)
    return TokenCreated(**_out(db, token).model_dump(), token=raw)


@router.get("/mcptokens/{name}", response_model=TokenOut, response_model_by_alias=True)
def get_token(name: str, _: PrincipalDep, db: DbDep) -> TokenOut:
    return _out(db, service.get_token(db=db, name=name))


@router.post("/mcptokens/{name}/revoke", response_model=TokenOut, response_model_by_alias=True)
def revoke_token(name: str, caller: CallerDep, db: DbDep, rt: RuntimeDep) -> TokenOut:
    """Revoke a token at once; its bindings are removed. Revoking twice is a no-op."""
    return _out(db, service.revoke_token(db=db, rt=rt, caller=caller, name=name))


@router.delete("/mcptokens/{name}", status_code=204)
def delete_token(name: str, caller: CallerDep, db: DbDep, rt: RuntimeDep) -> Response:
    service.delete_token(db=db, rt=rt, caller=caller, name=name)
    return Response(status_code=204)
