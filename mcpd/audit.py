"""Audit events: every mutation and every deny, in the transaction of what it records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from mcpd.models import AuditEvent

if TYPE_CHECKING:
    from mcpd.api.deps import Principal


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
) -> None:
    """Add an audit event to ``session``; it commits (or not) with the caller's change."""
    session.add(
        AuditEvent(
            subject=principal.user or principal.token_name or principal.subject,
            token_name=principal.token_name,
            token_sha=principal.token_sha,
            action=action,
            kind=kind,
            name=name,
            project=project,
            outcome=outcome,
            request_id=request_id,
            detail=detail or {},
        )
    )
