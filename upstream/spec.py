"""What the supervisor needs to reach one server: its config with secrets resolved.

Plain data, no database: mcplocal builds these too (mcpd reads its own from its
database: ``mcpd/upstreams.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HealthCheckSpec:
    tool: str | None
    interval_seconds: float
    timeout_seconds: float


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

    def __repr__(self) -> str:  # never print resolved secrets
        return f"UpstreamSpec({self.name!r}, {self.transport!r})"
