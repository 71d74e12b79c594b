"""RbacDefinition bodies: subjects x role bindings."""

from __future__ import annotations

from pydantic import Field, field_validator

from mcpd.models import RbacDefinition
from mcpd.schemas.common import CamelModel, DnsName, Meta, meta

# The RbacDefinition holding an McpToken's bindings is named TOKEN_RBAC_PREFIX + token name;
# users may not take such names (RbacIn).
TOKEN_RBAC_PREFIX = "mcptoken-"  # noqa: S105 - a name prefix, not a secret


def token_rbac_name(token_name: str) -> str:
    """The RbacDefinition (and rule origin ``rbac/<it>``) of an McpToken's bindings."""
    return TOKEN_RBAC_PREFIX + token_name


class RbacIn(CamelModel):
    name: DnsName
    subjects: list[str] = Field(min_length=1, max_length=1000)
    role_bindings: list[str] = Field(min_length=1, max_length=1000)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v.startswith(TOKEN_RBAC_PREFIX):
            raise ValueError(
                f"`{TOKEN_RBAC_PREFIX}` names are reserved for the definitions that hold "
                "McpTokens' bindings; choose another name"
            )
        return v


class RbacUpdate(CamelModel):
    subjects: list[str] = Field(min_length=1, max_length=1000)
    role_bindings: list[str] = Field(min_length=1, max_length=1000)
    version: int | None = None


class RbacOut(Meta):
    subjects: list[str]
    role_bindings: list[str]
    token: bool = Field(description="true when it holds an McpToken's bindings")


def rbac_out(r: RbacDefinition) -> RbacOut:
    return RbacOut(
        **meta(r), subjects=r.subjects, role_bindings=r.role_bindings, token=r.token_id is not None
    )


__all__ = ["TOKEN_RBAC_PREFIX", "RbacIn", "RbacOut", "RbacUpdate", "rbac_out", "token_rbac_name"]
