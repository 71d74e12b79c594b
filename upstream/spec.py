"""What the supervisor needs to reach one server: its config with secrets resolved.

Plain data, no database: mcplocal builds these too (mcpd reads its own from its
database: ``mcpd/upstreams.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import httpx2


@dataclass(frozen=True)
class HealthCheckSpec:
    tool: str | None
    interval_seconds: float
    timeout_seconds: float


@dataclass(frozen=True)
class LiveAuth:
    """A credential renewed while a session lives (mcplocal's own for mcpd)."""

    flow: httpx2.Auth  # the auth flow of the session's HTTP client (renews once on a 401)
    headers: Callable[[], Mapping[str, str]]  # the header now, for the fast lane's requests
    # after a 401 to requests with these headers: is there a fresh credential (logged in)?
    renew: Callable[[Mapping[str, str]], Awaitable[bool]]


@dataclass(frozen=True)
class UpstreamSpec:
    name: str
    transport: str  # stdio | http
    argv: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    health: HealthCheckSpec | None = None
    fingerprint: str = ""  # changes when anything above changes (secret values included)
    auth: LiveAuth | None = field(default=None, compare=False)

    def __repr__(self) -> str:  # never print resolved secrets
        return f"UpstreamSpec({self.name!r}, {self.transport!r})"
