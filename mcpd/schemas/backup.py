"""Restore's answer: what a restore did (or, in a dry run, would do) to each object."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mcpd.schemas.common import CamelModel

Outcome = Literal["created", "updated", "unchanged"]


class RestoreItem(CamelModel):
    kind: str
    name: str
    outcome: Outcome
    version: int
    fields: list[str] = Field(default_factory=list, description="what an update changed")


class RestoreOut(CamelModel):
    dry_run: bool
    created: int
    updated: int
    unchanged: int
    items: list[RestoreItem]


__all__ = ["Outcome", "RestoreItem", "RestoreOut"]
