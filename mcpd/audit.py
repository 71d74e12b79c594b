"""Audit events: every mutation and every deny, in the transaction of what it records."""

from __future__ import annotations

from typing import Any, overload

from sqlalchemy.orm import Session

from mcpd.models import AuditEvent
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
) -> None:
    """Add an audit event to ``session``; it commits (or not) with the caller's change.

    Values come from requests, including denied malformed ones, so each is made to fit its
    column (PostgreSQL refuses over-long strings and NUL characters): a deny is always audited.
    """
    session.add(
        AuditEvent(
            subject=_fit(principal.user or principal.token_name or principal.subject, 255),
            token_name=_fit(principal.token_name, 255),
            token_sha=principal.token_sha,
            action=_fit(action, 63),
            kind=_fit(kind, 63),
            name=_fit(name, 255),
            project=_fit(project, 63),
            outcome=outcome,
            request_id=_fit(request_id, 64),
            detail=detail or {},
        )
    )


@overload
def _fit(value: str, limit: int) -> str: ...
@overload
def _fit(value: None, limit: int) -> None: ...
def _fit(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = value.replace("\x00", "\N{REPLACEMENT CHARACTER}")
    return value if len(value) <= limit else value[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"
