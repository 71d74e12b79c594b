"""mcpd's settings, from the environment (``MCPD_*``) and command-line flags."""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_ALLOW_ENTRY = re.compile(r"^[A-Za-z0-9.:_/-]{1,255}$")


def default_database_url() -> str:
    """The embedded default: a SQLite file in the user's data directory."""
    data = Path(platformdirs.user_data_dir("mcpd", appauthor=False))
    return f"sqlite:///{data / 'mcpd.db'}"


LOOPBACK_HOSTS = "127.0.0.1,127.0.0.1:*,localhost,localhost:*,[::1],[::1]:*"
LOOPBACK_ORIGINS = ",".join(
    f"{scheme}://{h}" for h in LOOPBACK_HOSTS.split(",") for scheme in ("http", "https")
)


class Settings(BaseSettings):
    """Every setting can be given as an environment variable ``MCPD_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="MCPD_", extra="ignore")

    database_url: str = Field(
        default_factory=default_database_url,
        description="SQLAlchemy URL: sqlite:///PATH (default) or postgresql+psycopg://...",
    )
    host: str = Field(default="127.0.0.1", description="address to listen on")
    port: int = Field(default=8420, ge=1, le=65535, description="port to listen on")
    policy_dir: Path | None = Field(
        default=None, description="policy files directory (default: the shipped policies/)"
    )
    model_path: Path | None = Field(
        default=None, description="Casbin model file (default: the shipped model.conf)"
    )
    secrets_key: SecretStr | None = Field(
        default=None,
        description="Fernet key encrypting secret values at rest (default: a key file "
        "created beside the data directory, mode 0600)",
    )
    secrets_key_file: Path = Field(
        default_factory=lambda: (
            Path(platformdirs.user_data_dir("mcpd", appauthor=False)) / "secrets.key"
        ),
        description="where the generated key is kept when MCPD_SECRETS_KEY is not set",
    )
    session_ttl_seconds: int = Field(
        default=12 * 3600,
        ge=3,  # (a few seconds for tests; clients renew a login at half its lifetime)
        description="login session life",
    )
    login_attempts_per_minute: int = Field(
        default=10, ge=1, description="failed logins allowed per user and address per minute"
    )
    bootstrap_admin: str | None = Field(
        default=None, description="user name of the admin created on first start"
    )
    bootstrap_password: SecretStr | None = Field(
        default=None, description="that admin's password (never a default)"
    )

    log_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("mcpd", appauthor=False)) / "logs",
        description="where each stdio server's stderr is kept (<server>.log, rotated at 10 MB)",
    )
    instance_start_timeout: float = Field(
        default=15.0, gt=0, description="seconds for an upstream to start and answer initialize"
    )
    instance_call_timeout: float = Field(
        default=300.0, gt=0, description="seconds an upstream may take to answer one request"
    )
    instance_stop_grace: float = Field(
        default=5.0, ge=0, description="seconds between SIGTERM and SIGKILL when stopping"
    )
    instance_max_crashes: int = Field(
        default=5, ge=1, description="quick crashes in a row after which an instance is FAILED"
    )
    instance_retry_failed_seconds: float = Field(
        default=30.0, gt=0, description="seconds between new attempts at a FAILED instance"
    )
    probe_interval: float = Field(
        default=30.0, gt=0, description="seconds between liveness probes of a RUNNING instance"
    )
    tools_cache_ttl: float = Field(default=60.0, ge=0, description="tools/list cache life")
    tools_cache_negative_ttl: float = Field(
        default=5.0, ge=0, description="how long a failed tools/list is answered from cache"
    )
    stdio_sandbox: Literal["auto", "bwrap", "none"] = Field(
        default="auto",
        description="how stdio servers are confined: bwrap (bubblewrap, required: servers do "
        "not start without it), auto (bubblewrap where it runs, else none with a warning), none",
    )
    stdio_sandbox_binds: list[Path] = Field(
        default_factory=list,
        description="more paths stdio servers may read in the sandbox (JSON list), besides "
        "the system, their command's install and the working directory",
    )
    stdio_user: str | None = Field(
        default=None,
        description="OS user to run stdio servers as (mcpd must run as root)",
    )

    @field_validator("stdio_user")
    @classmethod
    def _known_user(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            pwd.getpwnam(v)
        except KeyError:
            raise ValueError(f"stdio user `{v}` does not exist") from None
        if os.geteuid() != 0:
            raise ValueError(f"stdio user `{v}` needs mcpd to run as root")
        return v

    upstream_allow: str = Field(
        default="",
        description="comma-separated addresses, networks (CIDR) or host names an http server's "
        "URL may point at although they are mcpd's own address or link-local / cloud metadata "
        "(refused by default)",
    )

    @field_validator("upstream_allow")
    @classmethod
    def _allow_list(cls, v: str) -> str:
        for entry in (e.strip() for e in v.split(",")):
            if entry and not _ALLOW_ENTRY.match(entry):
                raise ValueError(
                    f"upstream allow-list entry `{entry}` is not an address, "
                    "a network or a host name"
                )
        return v

    @property
    def upstream_allow_list(self) -> list[str]:
        return [e.strip().lower() for e in self.upstream_allow.split(",") if e.strip()]

    # -- boundaries (issue 13) ------------------------------------------------------------
    trusted_proxies: str = Field(
        default="",
        description="comma-separated addresses or CIDRs of reverse proxies whose "
        "X-Forwarded-For / X-Forwarded-Proto are believed (default none: the peer address is "
        "the client's, so the login rate limit cannot be dodged with a forged header)",
    )
    call_spool_max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=64 * 1024,
        description="SQLite: the most the spool of tools/call records not yet committed "
        "(beside the database file, `<file>-calls`) may hold; past it calls are refused",
    )
    call_spool_linger: float = Field(
        default=0.1,
        ge=0,
        le=60,
        description="SQLite: seconds a tools/call record waits in the spool for others to "
        "share its commit (a reader of the audit log commits them at once)",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="largest request body of an API route"
    )
    max_restore_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="largest body of POST /api/v1/restore and /api/v1/apply (a manifest)",
    )
    body_read_timeout: float = Field(
        default=30.0, gt=0, description="seconds a request body may take to arrive (else 408)"
    )
    max_json_depth: int = Field(
        default=256, ge=8, le=900, description="deepest JSON nesting accepted (else 400)"
    )
    max_mcp_sessions_per_subject: int = Field(
        default=64,
        ge=1,
        description="open MCP sessions one subject may hold on the per-server endpoint (else 429)",
    )

    mcp_allowed_hosts: str = Field(
        default=LOOPBACK_HOSTS,
        description="Host headers the per-server MCP endpoint accepts (comma-separated, "
        "`host:*` = any port): DNS-rebinding protection",
    )
    mcp_allowed_origins: str = Field(
        default=LOOPBACK_ORIGINS,
        description="Origin headers the per-server MCP endpoint accepts (a request without "
        "one is not checked)",
    )

    def mcp_hosts(self) -> list[str]:
        return [h.strip() for h in self.mcp_allowed_hosts.split(",") if h.strip()]

    def mcp_origins(self) -> list[str]:
        return [o.strip() for o in self.mcp_allowed_origins.split(",") if o.strip()]

    # -- OAuth 2.1 authorization server (issue 19) ---------------------------------------
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="how clients reach mcpd (the OAuth issuer; default http://HOST:PORT)",
    )
    oauth_resources: str = Field(
        default="http://127.0.0.1:8430/mcp,http://localhost:8430/mcp",
        description="comma-separated resource URIs (RFC 8707) mcpd issues OAuth tokens for: "
        "the mcplocal endpoints (`PUBLIC_URL/mcp`); mcpd's own per-server MCP endpoints "
        "are always allowed",
    )
    oauth_access_token_ttl: int = Field(
        default=600, ge=30, le=86400, description="seconds an OAuth access token lives"
    )
    oauth_refresh_token_ttl: int = Field(
        default=30 * 86400, ge=300, description="seconds an unused OAuth refresh token lives"
    )
    oauth_code_ttl: int = Field(
        default=120, ge=10, le=600, description="seconds an authorization code lives"
    )
    oauth_client_unused_ttl: int = Field(
        default=86400,
        ge=60,
        description="seconds a registered OAuth client may go without a grant before it expires",
    )
    oauth_max_clients: int = Field(
        default=1000, ge=1, description="registered OAuth clients kept at most (else 503)"
    )
    oauth_registrations_per_minute: int = Field(
        default=10, ge=1, description="client registrations allowed per address per minute"
    )

    @property
    def issuer(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def oauth_resource_list(self) -> list[str]:
        return [r.strip() for r in self.oauth_resources.split(",") if r.strip()]

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, v: str) -> str:
        if not v.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError(
                "database URL must start with sqlite:// or postgresql+psycopg:// "
                f"(got `{v.split('://', 1)[0]}://...`)"
            )
        if v.startswith("postgresql://"):
            v = "postgresql+psycopg://" + v.removeprefix("postgresql://")
        return v
