"""/api/v1/auditevents: the audit log (needs the `audit` operation)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from starlette.responses import Response

from mcpd import audit
from mcpd.api.deps import DbDep, PrincipalDep, RuntimeDep
from mcpd.errors import Forbidden, Invalid
from mcpd.models import AuditEvent
from mcpd.principal import Principal
from mcpd.runtime import Runtime, aware
from mcpd.schemas.auditevents import AuditOut, AuditPage, ReportedCall, ReportedCalls

router = APIRouter(prefix="/api/v1", tags=["audit"])

#: the query parameters of GET /auditevents: any other is refused, not silently ignored
FILTERS: Final = ("subject", "kind", "name", "project", "action", "outcome", "since", "until")
PAGING: Final = ("limit", "before")


@router.get("/auditevents", response_model=AuditPage, response_model_by_alias=True)
def list_audit(
    request: Request,
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
    unknown = sorted(set(request.query_params) - {*FILTERS, *PAGING})
    if unknown:
        raise Invalid(
            f"unknown filter(s) {', '.join(f'`{k}`' for k in unknown)}; "
            f"valid filters: {', '.join(FILTERS)}"
        )
    request.app.state.runtime.call_log.flush()  # the calls' records not yet committed
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
            event_id=e.event_id,
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
            policy_revision=e.policy_revision,
        )
        for e in rows[:limit]
    ]
    return AuditPage(items=items, next=nxt)


# A proxy sends its batches several times a second under load, so these two do their unit
# of work (session, insert, commit, close) in one worker-thread hop and answer with the
# count's bytes: DbDep takes a second hop to close the session, and a returned dict goes
# through the response model's validation and encoding (~0.2 ms of mcpd's CPU a request).


@router.post("/auditevents", status_code=202, response_model=dict[str, int])
async def report_calls(body: ReportedCalls, p: PrincipalDep, rt: RuntimeDep) -> Response:
    """Record tool calls made through a proxy (needs the `proxy` operation); all or none."""
    return await run_in_threadpool(_record_calls, rt, p, body.events)


@router.post("/auth/me/calls", status_code=202, response_model=dict[str, int])
async def report_my_calls(body: ReportedCalls, p: PrincipalDep, rt: RuntimeDep) -> Response:
    """Record the calling user's own tool calls (`mcplocal stdio`); all or none."""
    others = sorted({e.user or f"token {e.token_name}" for e in body.events if e.user != p.user})
    if p.user is None or others:
        raise Forbidden(f"{p.display} may report only its own calls, not those of {others}")
    return await run_in_threadpool(_record_calls, rt, p, body.events)


def _record_calls(rt: Runtime, p: Principal, events: list[ReportedCall]) -> Response:
    """Record the batch in one statement; an id recorded before (a retry, by any replica)
    is skipped, so a proxy may send a batch again whenever it did not hear the answer."""
    rows = []
    for e in events:
        caller = Principal(
            f"User:{e.user}" if e.user else f"McpToken:{e.token_sha}",
            user=e.user,
            token_name=e.token_name,
            token_sha=e.token_sha,
        )
        detail: dict[str, Any] = {
            "server": e.server,
            "tool": e.tool,
            "durationMs": round(e.duration_ms, 3),
            "via": p.display,
        }
        if e.error:
            detail["error"] = e.error
        if e.reason:
            detail["reason"] = e.reason
        rows.append(
            audit.row(
                caller,
                action="call" if e.kind == "tools" else "run",
                kind=e.kind,
                name=f"{e.server}__{e.tool}"[:255],
                project=e.project,
                outcome=e.outcome,
                request_id=e.request_id,
                detail=detail,
                revision=e.policy_revision,
                event_id=e.id,
                time=e.time,
            )
        )
    with rt.sessions() as db:
        recorded = audit.ingest(db, rows)
        audit.touch_tokens(db, {e.token_sha for e in events if e.token_sha})
        db.commit()
    body = b'{"recorded":%d,"duplicates":%d}' % (recorded, len(rows) - recorded)
    return Response(body, status_code=202, media_type="application/json")
