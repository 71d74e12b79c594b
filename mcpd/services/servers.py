"""Servers: create, update, delete (its instance stops), and reads.

What a server's spec may reach (``exec``, ``use``, its URL) is checked by
:func:`mcpd.services.capabilities.check_server`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mcpd.errors import Invalid
from mcpd.models import Project, ProjectServer, Server
from mcpd.runtime import Runtime
from mcpd.schemas.servers import ServerIn, ServerUpdate, dump_health, dump_spec
from mcpd.services.capabilities import check_refs, check_server
from mcpd.services.common import (
    check_version,
    get_or_404,
    page_query,
    paginate_rows,
    taken,
)
from mcpd.services.work import Caller, unit_of_work


def list_servers(*, db: Session, limit: int, after: str | None) -> tuple[list[Any], str | None]:
    """One page of servers as plain rows (the hot read path: no ORM objects)."""
    stmt = page_query(Server, limit, after, select(*Server.__table__.columns))
    return paginate_rows(db, stmt, limit)


def list_project_servers(*, db: Session, project: str) -> list[Server]:
    proj: Project = get_or_404(db, Project, project, "project")
    names = [s.server_name for s in proj.servers]
    return list(db.scalars(select(Server).where(Server.name.in_(names)).order_by(Server.name)))


def get_server(*, db: Session, name: str) -> Server:
    server: Server = get_or_404(db, Server, name, "server")
    return server


def create_server(*, db: Session, rt: Runtime, caller: Caller, spec: ServerIn) -> Server:
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="servers", action="create", name=spec.name
    ) as work:
        taken(db, Server, spec.name, "server")
        transport = dump_spec(spec.stdio or spec.http)  # type: ignore[arg-type]
        check_server(work, name=spec.name, transport=spec.transport, old=None, new=transport)
        server = Server(
            name=spec.name,
            description=spec.description,
            transport=spec.transport,
            spec=transport,
            health_check=dump_health(spec.health_check),
            created_by=caller.principal.display,
        )
        db.add(server)
        work.audit()
    return server


def update_server(
    *, db: Session, rt: Runtime, caller: Caller, name: str, change: ServerUpdate
) -> Server:
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="servers", action="update", name=name
    ) as work:
        server = get_server(db=db, name=name)
        check_version(server, change.version, "server")
        new = change.stdio if server.transport == "stdio" else change.http
        other = change.http if server.transport == "stdio" else change.stdio
        if other is not None:
            raise Invalid(f"server `{name}` uses {server.transport}: its transport cannot change")
        if new is not None:
            transport = dump_spec(new)
            check_server(
                work, name=name, transport=server.transport, old=server.spec, new=transport
            )
            server.spec = transport
        if change.description is not None:
            server.description = change.description
        if change.health_check is not None:
            server.health_check = dump_health(change.health_check)
        server.version += 1
        work.audit()
        work.after_commit(lambda: rt.server_changed(name))  # its instance restarts
    return server


def delete_server(*, db: Session, rt: Runtime, caller: Caller, name: str) -> None:
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="servers", action="delete", name=name
    ) as work:
        server = get_server(db=db, name=name)
        db.execute(delete(ProjectServer).where(ProjectServer.server_name == name))
        db.delete(server)
        work.audit()
        work.after_commit(lambda: rt.server_changed(name))  # stopped before the answer


__all__ = [
    "check_refs",
    "create_server",
    "delete_server",
    "get_server",
    "list_project_servers",
    "list_servers",
    "update_server",
]
