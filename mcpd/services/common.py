"""Queries every service shares: look up by name, pages in name order, version checks."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from mcpd.errors import Conflict, NotFound


def page_query(
    model: Any, limit: int, after: str | None, stmt: Select[Any] | None = None
) -> Select[Any]:
    stmt = stmt if stmt is not None else select(model)
    if after:
        stmt = stmt.where(model.name > after)
    return stmt.order_by(model.name).limit(limit + 1)


def paginate(session: Session, stmt: Select[Any], limit: int) -> tuple[list[Any], str | None]:
    rows = list(session.scalars(stmt))
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].name
    return rows, None


def paginate_rows(session: Session, stmt: Select[Any], limit: int) -> tuple[list[Any], str | None]:
    """:func:`paginate` for a select of columns: plain rows, no ORM objects to build."""
    rows = list(session.execute(stmt).all())
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].name
    return rows, None


def page(
    db: Session, model: Any, limit: int, after: str | None, stmt: Select[Any] | None = None
) -> tuple[list[Any], str | None]:
    """One page of ``model`` rows in name order, and the ``after`` of the next (or None)."""
    return paginate(db, page_query(model, limit, after, stmt), limit)


def get_or_404(session: Session, model: Any, name: str, what: str) -> Any:
    obj = session.scalars(select(model).where(model.name == name)).first()
    if obj is None:
        raise NotFound(f"{what} `{name}` not found")
    return obj


def check_version(obj: Any, version: int | None, what: str) -> None:
    if version is not None and version != obj.version:
        raise Conflict(
            f"{what} `{obj.name}` was changed by someone else (you sent version {version}, "
            f"it is at {obj.version}): get it again and re-apply your change",
            currentVersion=obj.version,
        )


def taken(session: Session, model: Any, name: str, what: str) -> None:
    if session.scalars(select(model.id).where(model.name == name)).first() is not None:
        raise Conflict(f"{what} `{name}` already exists")


__all__ = [
    "check_version",
    "get_or_404",
    "page",
    "page_query",
    "paginate",
    "paginate_rows",
    "taken",
]
