"""mcpd's settings, from the environment (``MCPD_*``) and command-line flags."""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    session_ttl_seconds: int = Field(default=12 * 3600, ge=60, description="login session life")
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
