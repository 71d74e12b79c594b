"""/api/v1/servers, and /api/v1/projects/{project}/servers."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool

from mcpd.api.common import After, Limit
from mcpd.api.deps import CallerDep, DbDep, PrincipalDep, RuntimeDep
from mcpd.models import Server
from mcpd.runtime import Runtime
from mcpd.schemas.common import Page
from mcpd.schemas.servers import ServerIn, ServerOut, ServerUpdate, server_out
from mcpd.services import servers as service

router = APIRouter(prefix="/api/v1", tags=["servers"])


@router.get("/servers", response_model=Page[ServerOut], response_model_by_alias=True)
async def list_servers(
    _: PrincipalDep, rt: RuntimeDep, limit: Limit = 100, after: After = None
) -> Response:
    # The hot read path (bench/mcpd.py). The page is the same for every caller allowed to
    # list servers, so it is kept, serialized, until the servers table changes
    # (mcpd.changes); a miss reads plain rows rather than ORM objects, off the event loop.
    gen, body = rt.read_cache.get(Server.__tablename__, (limit, after))
    if body is None:
        body = await run_in_threadpool(_servers_page, rt, limit, after)
        rt.read_cache.put(Server.__tablename__, (limit, after), gen, body)
    return Response(body, media_type="application/json")


def _servers_page(rt: Runtime, limit: int, after: str | None) -> bytes:
    with rt.sessions() as db:
        rows, nxt = service.list_servers(db=db, limit=limit, after=after)
    page = Page[ServerOut](items=[server_out(s) for s in rows], next=nxt)
    return page.model_dump_json(by_alias=True).encode()


@router.get(
    "/projects/{project}/servers", response_model=Page[ServerOut], response_model_by_alias=True
)
def list_project_servers(project: str, _: PrincipalDep, db: DbDep) -> Page[ServerOut]:
    rows = service.list_project_servers(db=db, project=project)
    return Page[ServerOut](items=[server_out(s) for s in rows])


@router.post("/servers", status_code=201, response_model=ServerOut, response_model_by_alias=True)
def create_server(body: ServerIn, caller: CallerDep, db: DbDep, rt: RuntimeDep) -> ServerOut:
    return server_out(service.create_server(db=db, rt=rt, caller=caller, spec=body))


@router.get("/servers/{name}", response_model=ServerOut, response_model_by_alias=True)
def get_server(name: str, _: PrincipalDep, db: DbDep) -> ServerOut:
    return server_out(service.get_server(db=db, name=name))


@router.put("/servers/{name}", response_model=ServerOut, response_model_by_alias=True)
def update_server(
    name: str, body: ServerUpdate, caller: CallerDep, db: DbDep, rt: RuntimeDep
) -> ServerOut:
    return server_out(service.update_server(db=db, rt=rt, caller=caller, name=name, change=body))


@router.delete("/servers/{name}", status_code=204)
def delete_server(name: str, caller: CallerDep, db: DbDep, rt: RuntimeDep) -> Response:
    service.delete_server(db=db, rt=rt, caller=caller, name=name)  # its instance stops first
    return Response(status_code=204)
