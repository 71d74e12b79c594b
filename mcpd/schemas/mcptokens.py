"""McpToken bodies: project-scoped bearer tokens for MCP clients."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from mcpd.models import McpToken
from mcpd.runtime import aware
from mcpd.schemas.common import CamelModel, DnsName, Meta, meta


class TokenIn(CamelModel):
    name: DnsName
    project: DnsName
    description: str = Field(default="", max_length=1000)
    ttl: str = Field(default="30d", max_length=64, description="30d, 12h, never or an ISO date")
    rbac: Literal["empty", "clone"] | None = Field(
        default=None,
        description="empty (default): no bindings; clone: the creator's in-project bindings",
    )
    bindings: list[str] = Field(default_factory=list, max_length=100)


class TokenOut(Meta):
    project: str
    description: str
    prefix: str
    rbac_mode: str
    bindings: list[str]
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="the raw token: shown once, never again")


def token_out(t: McpToken, bindings: list[str]) -> TokenOut:
    return TokenOut(
        **meta(t),
        project=t.project.name,
        description=t.description,
        prefix=t.prefix,
        rbac_mode=t.rbac_mode,
        bindings=bindings,
        expires_at=aware(t.expires_at),
        last_used_at=aware(t.last_used_at),
        revoked_at=aware(t.revoked_at),
    )


__all__ = ["TokenCreated", "TokenIn", "TokenOut", "token_out"]
