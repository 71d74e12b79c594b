"""Audit bodies: events as the log shows them, and tool calls a proxy reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from mcpd.schemas.common import CamelModel


class AuditOut(CamelModel):
    id: int
    event_id: str | None = None
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
    policy_revision: str | None = None


class AuditPage(CamelModel):
    items: list[AuditOut]
    next: int | None = None


class ReportedCall(CamelModel):
    """One tool call a proxy (mcplocal) decided for a caller: run (allow, error) or refused
    (deny); or a prompt or resource it refused (``kind``; ``tool`` is then its name or URI).
    ``id`` is the record's own, made at the decision: sent again, it is recorded once."""

    id: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    )
    user: str | None = Field(default=None, max_length=255, description="the caller, if a user")
    token_name: str | None = Field(default=None, max_length=255)
    token_sha: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    server: str = Field(min_length=1, max_length=255)
    tool: str = Field(min_length=1, max_length=255)
    kind: Literal["tools", "prompts", "resources"] = Field(
        default="tools", description="what `tool` is: a tool, or a prompt or resource refused"
    )
    project: str = Field(default="", max_length=63)
    outcome: Literal["allow", "deny", "error"]
    duration_ms: float = Field(ge=0, le=86_400_000)
    request_id: str = Field(default="", max_length=64)
    error: str | None = Field(default=None, max_length=2000)
    reason: str | None = Field(default=None, max_length=2000, description="the deciding line")
    time: datetime | None = Field(default=None, description="when it was decided (default: now)")
    policy_revision: str | None = Field(default=None, pattern=r"^[0-9a-f]{1,16}$")

    @model_validator(mode="after")
    def _one_caller(self) -> ReportedCall:
        if (self.user is None) == (self.token_sha is None):
            raise ValueError("give either `user` or `tokenSha` (with `tokenName`)")
        return self


class ReportedCalls(CamelModel):
    events: list[ReportedCall] = Field(min_length=1, max_length=1000)


__all__ = ["AuditOut", "AuditPage", "ReportedCall", "ReportedCalls"]
