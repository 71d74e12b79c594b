"""What every body shares: camelCase models, DNS-label names, an object's metadata, pages."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

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


__all__ = ["CamelModel", "DnsName", "Meta", "Page", "meta"]
