"""Auth bodies: login, the caller's own identity, can-i, and token introspection."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from mcpd.schemas.common import CamelModel


class LoginIn(CamelModel):
    username: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=1024)


class LoginOut(CamelModel):
    token: str
    expires_at: datetime
    user: str


class MeOut(CamelModel):
    subject: str
    user: str | None = None
    token_name: str | None = None
    project: str | None = None
    service_account: str | None = None


class CanIIn(CamelModel):
    action: str = Field(min_length=1, max_length=63)
    kind: str = Field(min_length=1, max_length=63)
    name: str = Field(default="", max_length=255)
    project: str = Field(default="", max_length=63)
    subject: str | None = Field(default=None, description="ask for another subject (impersonate)")


class CanIOut(CamelModel):
    allowed: bool
    reason: str


class IntrospectOut(CamelModel):
    active: bool
    status: str  # valid | revoked | expired | unknown
    name: str | None = None
    project: str | None = None
    expires_at: datetime | None = None


__all__ = ["CanIIn", "CanIOut", "IntrospectOut", "LoginIn", "LoginOut", "MeOut"]
