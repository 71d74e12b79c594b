"""How the supervisor runs instances: timeouts, backoff, probes, cache lifetimes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from upstream.guard import PeerGuard
from upstream.sandbox import Sandbox


@dataclass(frozen=True)
class SupervisorSettings:
    log_dir: Path | None = None
    start_timeout: float = 15.0  # spawn + initialize
    call_timeout: float = 300.0
    stop_grace: float = 5.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_crashes: int = 5
    stable_after: float = 60.0  # a run this long resets the crash count
    failed_retry_seconds: float = 30.0
    probe_interval: float = 30.0  # default liveness probe (tools/list) for RUNNING instances
    probe_timeout: float = 10.0
    probe_failures: int = 3  # consecutive failed probes that restart an instance
    tools_ttl: float = 60.0
    negative_ttl: float = 5.0
    sandbox: Sandbox | None = None  # how stdio children are confined (None: not at all)
    peer_guard: PeerGuard | None = None  # where http upstream connections may land (None: anywhere)
