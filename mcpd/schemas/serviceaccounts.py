"""ServiceAccount bodies: machine identities (mcplocal, automation) and their tokens."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from mcpd.models import ServiceAccount, ServiceAccountToken
from mcpd.runtime import aware
from mcpd.schemas.common import CamelModel, DnsName, Meta, meta


class ServiceAccountIn(CamelModel):
    name: DnsName
    description: str = Field(default="", max_length=1000)
    token_ttl: str = Field(
        default="never", max_length=64, description="the first token's life: never, 90d, ..."
    )


class ServiceAccountUpdate(CamelModel):
    description: str = Field(default="", max_length=1000)
    version: int | None = None


class TokenIn(CamelModel):
    ttl: str = Field(default="never", max_length=64, description="never (default), 90d, ...")


class CredentialOut(CamelModel):
    """One token of the account, by its display prefix (the value is never shown again)."""

    prefix: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ServiceAccountOut(Meta):
    description: str
    subject: str
    tokens: list[CredentialOut]
    last_used_at: datetime | None  # the latest use of any of its tokens


class ServiceAccountCreated(ServiceAccountOut):
    token: str = Field(description="the raw token: shown once, never again")
    token_prefix: str


def credential_out(t: ServiceAccountToken) -> CredentialOut:
    return CredentialOut(
        prefix=t.prefix,
        created_at=aware(t.created_at),
        created_by=t.created_by,
        expires_at=aware(t.expires_at),
        last_used_at=aware(t.last_used_at),
        revoked_at=aware(t.revoked_at),
    )


def account_out(a: ServiceAccount) -> ServiceAccountOut:
    used = [aware(t.last_used_at) for t in a.tokens if t.last_used_at is not None]
    return ServiceAccountOut(
        **meta(a),
        description=a.description,
        subject=f"ServiceAccount:{a.name}",
        tokens=[credential_out(t) for t in a.tokens],
        last_used_at=max(used) if used else None,
    )


__all__ = [
    "CredentialOut",
    "ServiceAccountCreated",
    "ServiceAccountIn",
    "ServiceAccountOut",
    "ServiceAccountUpdate",
    "TokenIn",
    "account_out",
    "credential_out",
]
