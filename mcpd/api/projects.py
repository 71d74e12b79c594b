"""/api/v1/projects."""

from __future__ import annotations

from fastapi import APIRouter, Response

from mcpd.api.common import After, Limit
from mcpd.api.deps import CallerDep, DbDep, PrincipalDep, RuntimeDep
from mcpd.schemas.common import Page
from mcpd.schemas.projects import ProjectIn, ProjectOut, ProjectUpdate, project_out
from mcpd.services import projects as service

router = APIRouter(prefix="/api/v1", tags=["projects"])


@router.get("/projects", response_model=Page[ProjectOut], response_model_by_alias=True)
def list_projects(
    _: PrincipalDep, db: DbDep, limit: Limit = 100, after: After = None
) -> Page[ProjectOut]:
    rows, nxt = service.list_projects(db=db, limit=limit, after=after)
    return Page[ProjectOut](items=[project_out(p) for p in rows], next=nxt)


@router.post("/projects", status_code=201, response_model=ProjectOut, response_model_by_alias=True)
def create_project(body: ProjectIn, caller: CallerDep, db: DbDep, rt: RuntimeDep) -> ProjectOut:
    return project_out(service.create_project(db=db, rt=rt, caller=caller, spec=body))


@router.get("/projects/{name}", response_model=ProjectOut, response_model_by_alias=True)
def get_project(name: str, _: PrincipalDep, db: DbDep) -> ProjectOut:
    return project_out(service.get_project(db=db, name=name))


@router.put("/projects/{name}", response_model=ProjectOut, response_model_by_alias=True)
def update_project(
    name: str, body: ProjectUpdate, caller: CallerDep, db: DbDep, rt: RuntimeDep
) -> ProjectOut:
    project = service.update_project(db=db, rt=rt, caller=caller, name=name, change=body)
    return project_out(project)


@router.delete("/projects/{name}", status_code=204)
def delete_project(name: str, caller: CallerDep, db: DbDep, rt: RuntimeDep) -> Response:
    """Delete a project and, with it, its McpTokens (and their bindings)."""
    service.delete_project(db=db, rt=rt, caller=caller, name=name)
    return Response(status_code=204)
