"""Shapes and helpers every resource router shares."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from mcpd.errors import Conflict, NotFound
from mcpd.runtime import aware

_DNS = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def _dns_label(v: str) -> str:
    if not _DNS.match(v):
        raise ValueError(
            "must be 1-63 lowercase letters, digits and '-', starting and ending with a "
            "letter or digit"
        )
    return v


DnsName = Annotated[str, AfterValidator(_dns_label)]


class CamelModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class Meta(CamelModel):
    name: str
    created_at: datetime
    updated_at: datetime
    created_by: str
    version: int


def meta(obj: Any) -> dict[str, Any]:
    return {
        "name": obj.name,
        "created_at": aware(obj.created_at),
        "updated_at": aware(obj.updated_at),
        "created_by": obj.created_by,
        "version": obj.version,
    }


T = TypeVar("T")


class Page(CamelModel, Generic[T]):
    items: list[T]
    next: str | None = Field(default=None, description="pass as `after` for the next page")


#: The list endpoints' page parameters.
Limit = Annotated[int, Query(ge=1, le=500)]
After = Annotated[str | None, Query(max_length=255)]


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
