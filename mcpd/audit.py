"""Audit events: every mutation and every deny, in the transaction of what it records;
and tool calls, each once (:func:`ingest`).

Every event has an id made where the decision was (``event_id``, a uuid) and the policy
revision it was decided under (``policy_revision``, :mod:`authz.revision`). A proxy's
records come with their own ids, so a batch sent again after a lost answer is recorded
once: :func:`ingest` skips ids already committed, whoever committed them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, overload

from sqlalchemy import insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mcpd.models import AuditEvent, McpToken, utcnow
from mcpd.principal import Principal


def record(
    session: Session,
    principal: Principal,
    *,
    action: str,
    kind: str,
    name: str = "",
    project: str = "",
    outcome: str = "allow",
    request_id: str = "",
    detail: dict[str, Any] | None = None,
    revision: str | None = None,
    event_id: str | None = None,
) -> None:
    """Add an audit event to ``session``; it commits (or not) with the caller's change.

    Values come from requests, including denied malformed ones, so each is made to fit its
    column (PostgreSQL refuses over-long strings and NUL characters): a deny is always audited.
    """
    session.add(AuditEvent(**row(principal, action=action, kind=kind, name=name,
                                 project=project, outcome=outcome, request_id=request_id,
                                 detail=detail, revision=revision, event_id=event_id)))  # fmt: skip


def row(
    principal: Principal,
    *,
    action: str,
    kind: str,
    name: str = "",
    project: str = "",
    outcome: str = "allow",
    request_id: str = "",
    detail: dict[str, Any] | None = None,
    revision: str | None = None,
    event_id: str | None = None,
    time: datetime | None = None,
) -> dict[str, Any]:
    """The column values of one audit event (see :func:`record`)."""
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "time": time or utcnow(),
        "subject": _fit(principal.user or principal.token_name or principal.subject, 255),
        "token_name": _fit(principal.token_name, 255),
        "token_sha": principal.token_sha,
        "action": _fit(action, 63),
        "kind": _fit(kind, 63),
        "name": _fit(name, 255),
        "project": _fit(project, 63),
        "outcome": outcome,
        "request_id": _fit(request_id, 64),
        "detail": detail or {},
        "policy_revision": _fit(revision, 16),
    }


def ingest(session: Session, rows: Iterable[dict[str, Any]]) -> int:
    """Insert events made by :func:`row` in one statement, skipping any whose
    ``event_id`` is already recorded (by this replica or another); the number inserted.
    The caller commits."""
    values = list(rows)
    if not values:
        return 0
    table: Any = AuditEvent.__table__
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).on_conflict_do_nothing(index_elements=["event_id"])
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=["event_id"])
    else:  # pragma: no cover - mcpd runs on SQLite or PostgreSQL
        stmt = insert(table)
    # executemany of one cached statement ("insertmanyvalues"): RETURNING names the rows
    # inserted, so the count leaves out the ids recorded before
    inserted = session.execute(stmt.returning(table.c.id), values)
    return len(inserted.all())


def touch_tokens(session: Session, shas: set[str]) -> None:
    """A token's LAST USED moves on with each call audited for it (made through mcpd or a
    proxy alike)."""
    if shas:
        session.execute(
            update(McpToken)
            .where(McpToken.token_sha.in_(sorted(shas)))
            .values(last_used_at=utcnow())
        )


def write_calls(session: Session, rows: list[dict[str, Any]]) -> None:
    """Commit ``tools/call`` records (mcpd's own endpoint; a group commit's write)."""
    ingest(session, rows)
    touch_tokens(session, {r["token_sha"] for r in rows if r.get("token_sha")})
    session.commit()


@overload
def _fit(value: str, limit: int) -> str: ...
@overload
def _fit(value: None, limit: int) -> None: ...
def _fit(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = value.replace("\x00", "\N{REPLACEMENT CHARACTER}")
    return value if len(value) <= limit else value[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"
