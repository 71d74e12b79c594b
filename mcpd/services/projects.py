"""Projects: create, update, delete (with its McpTokens), and reads.

Adding a server to a project needs ``attach`` on it there
(:func:`mcpd.services.capabilities.check_attach`)."""

from __future__ import annotations

from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session

from mcpd.errors import Invalid
from mcpd.models import McpToken, Project, ProjectServer, Server
from mcpd.runtime import Runtime
from mcpd.schemas.projects import ProjectIn, ProjectUpdate, check_summarizer, dump_options
from mcpd.schemas.rbac import token_rbac_name
from mcpd.services.capabilities import check_attach
from mcpd.services.common import check_version, get_or_404, page, taken
from mcpd.services.work import Caller, unit_of_work


def known_servers(db: Session, names: list[str]) -> list[str]:
    """``names`` sorted and deduplicated; 422 naming any server that does not exist."""
    unique = sorted(set(names))
    known = set(db.scalars(select(Server.name).where(Server.name.in_(unique))))
    unknown = [n for n in unique if n not in known]
    if unknown:
        raise Invalid("servers: unknown server(s) " + ", ".join(f"`{n}`" for n in unknown))
    return unique


def list_projects(
    *, db: Session, limit: int, after: str | None
) -> tuple[list[Project], str | None]:
    return page(db, Project, limit, after)


def get_project(*, db: Session, name: str) -> Project:
    project: Project = get_or_404(db, Project, name, "project")
    return project


def create_project(*, db: Session, rt: Runtime, caller: Caller, spec: ProjectIn) -> Project:
    with unit_of_work(
        db=db,
        rt=rt,
        caller=caller,
        kind="projects",
        action="create",
        name=spec.name,
        project=spec.name,
    ) as work:
        taken(db, Project, spec.name, "project")
        servers = check_attach(work, project=spec.name, servers=spec.servers, before=())
        project = Project(
            name=spec.name,
            description=spec.description,
            proxy_model=spec.proxy_model,
            proxy_options=dump_options(spec.proxy_options),
            servers=[ProjectServer(server_name=s) for s in servers],
            created_by=caller.principal.display,
        )
        db.add(project)
        work.audit(detail={"servers": servers})
    return project


def update_project(
    *, db: Session, rt: Runtime, caller: Caller, name: str, change: ProjectUpdate
) -> Project:
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="projects", action="update", name=name, project=name
    ) as work:
        project = get_project(db=db, name=name)
        check_version(project, change.version, "project")
        if change.description is not None:
            project.description = change.description
        if change.proxy_model is not None:
            project.proxy_model = change.proxy_model
        if change.proxy_options is not None:
            project.proxy_options = dump_options(change.proxy_options)
        check_summarizer(project.proxy_model, project.proxy_options or {})
        if change.servers is not None:
            before = [s.server_name for s in project.servers]
            servers = check_attach(work, project=name, servers=change.servers, before=before)
            project.servers = [ProjectServer(server_name=s) for s in servers]
        project.version += 1
        work.audit()
        work.after_commit(lambda: rt.project_servers.forget(name))
    return project


def delete_project(*, db: Session, rt: Runtime, caller: Caller, name: str) -> None:
    """Delete a project and, with it, its McpTokens (and their bindings)."""
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="projects", action="delete", name=name, project=name
    ) as work:
        project = get_project(db=db, name=name)
        tokens = list(db.scalars(select(McpToken).where(McpToken.project_id == project.id)))
        for t in tokens:
            work.policy.drop(db, f"rbac/{token_rbac_name(t.name)}")  # definitions: FK cascade
        shas = [t.token_sha for t in tokens]
        db.delete(project)
        work.audit(detail={"tokensDeleted": [t.name for t in tokens]})
        for sha in shas:
            work.after_commit(partial(rt.authorizer.unregister_token, sha))
        work.after_commit(lambda: rt.project_servers.forget(name))


__all__ = [
    "create_project",
    "delete_project",
    "get_project",
    "known_servers",
    "list_projects",
    "update_project",
]
