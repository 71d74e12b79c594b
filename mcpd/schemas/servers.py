"""Server bodies: how to reach an MCP server (stdio command or HTTP URL), secretRefs."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from sqlalchemy import Row

from mcpd.models import Server
from mcpd.schemas.common import CamelModel, DnsName, Meta, meta

_SECRET_REF = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?/[A-Za-z0-9_.-]{1,253}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,128}$")


class SecretRef(CamelModel):
    secret_ref: str = Field(description="`secret/key`")

    @field_validator("secret_ref")
    @classmethod
    def _ref(cls, v: str) -> str:
        if not _SECRET_REF.match(v):
            raise ValueError("must be `SECRET/KEY`, e.g. `github/token`")
        return v


Value = str | SecretRef


class StdioSpec(CamelModel):
    command: str = Field(min_length=1, max_length=1024)
    args: list[str] = Field(default_factory=list, max_length=256)
    env: dict[str, Value] = Field(default_factory=dict, max_length=256)

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, Value]) -> dict[str, Value]:
        for k in v:
            if not _ENV_NAME.match(k):
                raise ValueError(f"`{k}` is not a valid environment variable name")
        return v


class HttpSpec(CamelModel):
    url: str = Field(min_length=1, max_length=2048, pattern=r"^https?://[^\s]+$")
    headers: dict[str, Value] = Field(default_factory=dict, max_length=64)

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, Value]) -> dict[str, Value]:
        for k in v:
            if not _HEADER_NAME.match(k):
                raise ValueError(f"`{k}` is not a valid header name")
            if k.lower() == "authorization" and isinstance(v[k], str):
                raise ValueError("put an Authorization header in a secret and use a secretRef")
        return v


class HealthCheck(CamelModel):
    tool: str | None = Field(default=None, max_length=128, description="tool to call; default ping")
    interval_seconds: int = Field(default=30, ge=1, le=86400)
    timeout_seconds: int = Field(default=10, ge=1, le=3600)


class ServerIn(CamelModel):
    name: DnsName
    description: str = Field(default="", max_length=2000)
    transport: Literal["stdio", "http"]
    stdio: StdioSpec | None = None
    http: HttpSpec | None = None
    health_check: HealthCheck | None = None

    @model_validator(mode="after")
    def _one_transport(self) -> ServerIn:
        if self.transport == "stdio" and (self.stdio is None or self.http is not None):
            raise ValueError("a stdio server needs `stdio` {command, args, env} and no `http`")
        if self.transport == "http" and (self.http is None or self.stdio is not None):
            raise ValueError("an http server needs `http` {url, headers} and no `stdio`")
        return self


class ServerUpdate(CamelModel):
    description: str | None = Field(default=None, max_length=2000)
    stdio: StdioSpec | None = None
    http: HttpSpec | None = None
    health_check: HealthCheck | None = None
    version: int | None = None


class ServerOut(Meta):
    description: str
    transport: str
    stdio: dict[str, Any] | None = None
    http: dict[str, Any] | None = None
    health_check: dict[str, Any] | None = None


def server_out(s: Server | Row[Any]) -> ServerOut:
    return ServerOut(
        **meta(s),
        description=s.description,
        transport=s.transport,
        stdio=s.spec if s.transport == "stdio" else None,
        http=s.spec if s.transport == "http" else None,
        health_check=s.health_check,
    )


def dump_spec(spec: StdioSpec | HttpSpec) -> dict[str, Any]:
    """A transport spec as stored (camelCase)."""
    return spec.model_dump(by_alias=True)


def dump_health(check: HealthCheck | None) -> dict[str, Any] | None:
    return check.model_dump(by_alias=True) if check else None


def secret_refs(spec: dict[str, Any]) -> set[str]:
    """The ``secret/key`` references of a stored spec (env values and headers)."""
    values = {**spec.get("env", {}), **spec.get("headers", {})}
    return {v["secretRef"] for v in values.values() if isinstance(v, dict)}


__all__ = [
    "HealthCheck",
    "HttpSpec",
    "SecretRef",
    "ServerIn",
    "ServerOut",
    "ServerUpdate",
    "StdioSpec",
    "Value",
    "dump_health",
    "dump_spec",
    "secret_refs",
    "server_out",
]
