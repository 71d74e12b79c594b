"""/api/v1/auditevents: the audit log (needs the `audit` operation)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from sqlalchemy import select

from mcpd.api.common import CamelModel
from mcpd.api.deps import DbDep, PrincipalDep
from mcpd.models import AuditEvent
from mcpd.runtime import aware

router = APIRouter(prefix="/api/v1", tags=["audit"])


class AuditOut(CamelModel):
    id: int
    time: datetime
    subject: str
    token_name: str | None
    token_sha: str | None
    action: str
    kind: str
    name: str
    project: str
    outcome: str
    request_id: str
    detail: dict[str, Any]


class AuditPage(CamelModel):
    items: list[AuditOut]
    next: int | None = None


@router.get("/auditevents", response_model=AuditPage, response_model_by_alias=True)
def list_audit(
    _: PrincipalDep,
    db: DbDep,
    subject: Annotated[str | None, Query(max_length=255)] = None,
    kind: Annotated[str | None, Query(max_length=63)] = None,
    name: Annotated[str | None, Query(max_length=255)] = None,
    project: Annotated[str | None, Query(max_length=63)] = None,
    action: Annotated[str | None, Query(max_length=63)] = None,
    outcome: Literal["allow", "deny", "error"] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="page: events older than this id")
    ] = None,
) -> AuditPage:
    """Newest first; filter by any field; page with `before`."""
    stmt = select(AuditEvent)
    for column, value in (
        (AuditEvent.subject, subject),
        (AuditEvent.kind, kind),
        (AuditEvent.name, name),
        (AuditEvent.project, project),
        (AuditEvent.action, action),
        (AuditEvent.outcome, outcome),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if since is not None:
        stmt = stmt.where(AuditEvent.time >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.time < until)
    if before is not None:
        stmt = stmt.where(AuditEvent.id < before)
    rows = list(db.scalars(stmt.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    nxt = rows[limit - 1].id if len(rows) > limit else None
    items = [
        AuditOut(
            id=e.id,
            time=aware(e.time),
            subject=e.subject,
            token_name=e.token_name,
            token_sha=e.token_sha,
            action=e.action,
            kind=e.kind,
            name=e.name,
            project=e.project,
            outcome=e.outcome,
            request_id=e.request_id,
            detail=e.detail,
        )
        for e in rows[:limit]
    ]
    return AuditPage(items=items, next=nxt)
