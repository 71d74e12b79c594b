"""OAuth bodies: client registration (RFC 7591) and the grants a user holds."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from mcpd.schemas.common import CamelModel


class ClientIn(BaseModel):
    """What a client may register; other metadata is ignored (RFC 7591 2)."""

    model_config = ConfigDict(extra="ignore")

    redirect_uris: list[Annotated[str, Field(max_length=2000)]] = Field(min_length=1, max_length=10)
    client_name: str | None = Field(default=None, max_length=200)
    client_uri: str | None = Field(default=None, max_length=2000)
    grant_types: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=lambda: ["authorization_code", "refresh_token"], max_length=5
    )
    response_types: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=lambda: ["code"], max_length=5
    )
    token_endpoint_auth_method: str | None = Field(default=None, max_length=64)
    scope: str | None = Field(default=None, max_length=255)
    software_id: str | None = Field(default=None, max_length=200)
    software_version: str | None = Field(default=None, max_length=100)


class GrantOut(CamelModel):
    name: str  # the McpToken the grant acts as
    client: str
    client_id: str
    user: str
    project: str
    resource: str
    scope: str
    bindings: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


__all__ = ["ClientIn", "GrantOut"]
