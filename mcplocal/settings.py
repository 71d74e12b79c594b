"""mcplocal's settings, from the environment (``MCPLOCAL_*``) and command-line flags."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import anyio
import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from authz.tokens import token_kind
from client import ApiError, AsyncMcpdClient, BearerAuth
from mcplocal.cache import DEFAULT_CACHE_DIR
from mcplocal.pipeline import parse_summarizers


def _writable(path: Path) -> bool:
    """Could this process create and write ``path`` (it, or its nearest existing parent)?"""
    for p in (path, *path.parents):
        if p.exists():
            return p.is_dir() and os.access(p, os.W_OK | os.X_OK)
    return False


DEFAULT_SPOOL_DIR = Path("/var/lib/mcplocal/audit")


def default_spool_dir() -> Path:
    """``/var/lib/mcplocal/audit`` where this user may write it, else the user's data
    directory (``~/.local/share/mcplocal/audit``)."""
    if _writable(DEFAULT_SPOOL_DIR):
        return DEFAULT_SPOOL_DIR
    return Path(platformdirs.user_data_dir("mcplocal", appauthor=False)) / "audit"


def default_cache_dir() -> Path:
    """``/var/lib/mcplocal/cache`` where this user may write it (the service's own user,
    root), else the user's cache directory (``~/.cache/mcplocal``)."""
    if _writable(DEFAULT_CACHE_DIR):
        return DEFAULT_CACHE_DIR
    return Path(platformdirs.user_cache_dir("mcplocal", appauthor=False))


LOOPBACK_HOSTS = "127.0.0.1,127.0.0.1:*,localhost,localhost:*,[::1],[::1]:*"
LOOPBACK_ORIGINS = ",".join(
    f"{scheme}://{h}" for h in LOOPBACK_HOSTS.split(",") for scheme in ("http", "https")
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MCPLOCAL_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="address to listen on (serve)")
    port: int = Field(default=8430, ge=1, le=65535, description="port to listen on (serve)")
    mcpd_url: str = Field(default="http://127.0.0.1:8420", pattern=r"^https?://[^\s]+$")
    mcpd_token: SecretStr | None = Field(
        default=None,
        description="mcplocal's own credential for mcpd: a service account's token "
        "(mcpctl_sa_..., `mcpctl create serviceaccount`), or a session bearer",
    )
    mcpd_user: str | None = Field(default=None, description="or: that user's name ...")
    mcpd_password: SecretStr | None = Field(default=None, description="... and password")
    public_url: str | None = Field(
        default=None, description="how clients reach this mcplocal (default http://HOST:PORT)"
    )
    authorization_server: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s]+$",
        description="the OAuth authorization server named in the RFC 9728 metadata (default: "
        "MCPLOCAL_MCPD_URL; set it when clients reach mcpd by another URL)",
    )
    oauth_introspection_ttl: float = Field(
        default=30.0,
        ge=0,
        le=300,
        description="seconds an OAuth token's introspection at mcpd is remembered (never past "
        "its expiry; a revoked grant is refused at once through the policy stream)",
    )
    allowed_hosts: str = Field(
        default=LOOPBACK_HOSTS,
        description="Host headers accepted (comma-separated, `:*` = any port): DNS rebinding",
    )
    allowed_origins: str = Field(
        default=LOOPBACK_ORIGINS,
        description="Origin headers accepted (a request without one is not checked)",
    )
    stateless: bool = Field(
        default=False,
        description="no MCP sessions: every request stands alone, so any replica can serve "
        "it (several replicas behind one Service); no server-to-client stream (listChanged)",
    )
    log_http_requests: bool = Field(
        default=False,
        description="log each HTTP request mcplocal makes with httpx2 (to mcpd on the SDK "
        "path, audit batches, logins) at INFO; off: only their warnings (what it serves is "
        "in uvicorn's access log either way)",
    )
    trusted_proxies: str = Field(
        default="",
        description="comma-separated addresses or CIDRs of reverse proxies whose "
        "X-Forwarded-For / X-Forwarded-Proto are believed (default none: uvicorn would "
        "otherwise believe any loopback peer)",
    )
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="pipeline file cache (default /var/lib/mcplocal/cache, or the user's "
        "cache directory when that is not writable)",
    )
    cache_max_bytes: int = Field(default=512 * 1024 * 1024, ge=1024 * 1024)
    audit_spool_dir: Path = Field(
        default_factory=default_spool_dir,
        description="where each tools/call's audit record waits until mcpd has committed it "
        "(default /var/lib/mcplocal/audit, or the user's data directory)",
    )
    audit_spool_max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=64 * 1024,
        description="the spool's bound: past it calls are refused and /readyz fails",
    )
    audit_spool_fsync: bool = Field(
        default=True,
        description="fsync each group of records before their calls are answered (off: "
        "written before the answer, safe from a crash of mcplocal but not of the host)",
    )
    audit_delivery_linger: float = Field(
        default=0.25,
        ge=0,
        le=5,
        description="seconds audit delivery waits after a record is spooled, so that the "
        "records of a busy moment go to mcpd in one request (0: each as soon as it can)",
    )
    tools_cache_ttl: float = Field(default=60.0, ge=0)
    tools_cache_negative_ttl: float = Field(default=5.0, ge=0)
    summarizers: str = Field(
        default="",
        description="summarizer endpoints a project's proxyModel summarize may choose, by "
        "name: `name=url,name2=url2` (OpenAI-compatible base URLs); they get tool results "
        "and MCPLOCAL_SUMMARIZE_API_KEY. The pipeline reads MCPLOCAL_SUMMARIZERS itself",
    )

    @field_validator("summarizers")
    @classmethod
    def _summarizers(cls, v: str) -> str:
        parse_summarizers(v)  # a bad entry stops mcplocal at start, naming it
        return v

    def hosts(self) -> list[str]:
        return [h.strip() for h in self.allowed_hosts.split(",") if h.strip()]

    def origins(self) -> list[str]:
        return [o.strip() for o in self.allowed_origins.split(",") if o.strip()]


log = logging.getLogger("mcplocal")


class McpdCredential:
    """mcplocal's own credential for mcpd: a service account's token (``mcpctl_sa_...``:
    it does not lapse), a given session bearer, or a user's login kept fresh.

    A face over the client's auth flow (:attr:`auth`, a :class:`client.BearerAuth`, which
    every client of mcpd in mcplocal uses): a login is renewed before its session expires
    (at half its lifetime, :meth:`keep_fresh`) and once on a 401; a token is never
    renewed, and a 401 to it is kept in ``auth.refused``. ``await headers()`` gives the
    header now, logging in first when there is no bearer yet or it is due for renewal.
    """

    def __init__(
        self,
        mcpd_url: str,
        *,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        if not token and not (user and password):
            raise ValueError(
                "mcplocal needs its own credential for mcpd: set MCPLOCAL_MCPD_TOKEN "
                "(a service account's token from `mcpctl create serviceaccount`), or "
                "MCPLOCAL_MCPD_USER and MCPLOCAL_MCPD_PASSWORD"
            )
        self.mcpd_url = mcpd_url.rstrip("/")
        self._user = user
        self.auth = BearerAuth(token, username=user, password=password)

    @property
    def kind(self) -> Literal["serviceaccount", "login", "bearer"]:
        if self.auth.can_login:
            return "login"
        token = self.auth.token or ""
        return "serviceaccount" if token_kind(token) == "serviceaccount" else "bearer"

    async def headers(self) -> dict[str, str]:
        if not self.auth.stale():
            return self.auth.headers()
        try:
            async with AsyncMcpdClient(self.mcpd_url, self.auth, timeout=15.0) as mcpd:
                return await mcpd.fresh_headers()
        except ApiError as exc:
            raise RuntimeError(
                f"mcplocal cannot log in to mcpd as {self._user}: {exc.text}"
            ) from None

    async def keep_fresh(self, retry: float = 5.0, max_refusals: int = 3) -> None:
        """Renew a login before its session expires, for as long as mcplocal runs (what
        holds the header itself - the fast lane's upstream sessions - sees the new one).
        A login mcpd refuses ``max_refusals`` times in a row is not tried again here."""
        if not self.auth.can_login:
            return
        refusals = 0
        while True:
            if self.auth.stale():
                try:
                    await self.headers()
                    refusals = 0
                    log.info(
                        "renewed mcplocal's login to mcpd (next in %.1f s)",
                        self.auth.renews_in() or 0,
                    )
                except Exception as exc:  # mcpd away, or the login refused: try again
                    refusals = refusals + 1 if self.auth.refused else 0  # (a 401 to it)
                    if refusals >= max_refusals:
                        log.error("%s; not renewing it again", exc)
                        return
                    log.warning("cannot renew mcplocal's login to mcpd: %s", exc)
                    await anyio.sleep(retry)
                    continue
            wait = self.auth.renews_in()
            await anyio.sleep(retry if wait is None else min(max(wait, 0.05), 3600.0))
