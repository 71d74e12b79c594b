"""OAuth access tokens, checked at mcpd (RFC 7662 introspection) and remembered briefly.

An answer is kept for at most ``ttl`` seconds and never past the token's ``exp``. A
revocation needs no wait for that: the grant's McpToken is in the policy stream, which
:mod:`mcplocal.app` checks on every request, so a revoked grant is refused as soon as mcpd
streams it. Inactive answers are not kept (a token cannot become active again).
"""

from __future__ import annotations

import time
from typing import Any

from authz.tokens import token_sha256
from client import AsyncMcpdClient


class Introspector:
    def __init__(self, mcpd: AsyncMcpdClient, ttl: float = 30.0, max_entries: int = 10_000):
        self.mcpd = mcpd
        self.ttl = ttl
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self.lookups = 0  # answers asked of mcpd (for tests and metrics)

    async def check(self, raw: str) -> dict[str, Any] | None:
        """The token's claims while it is active; None when mcpd says it is not."""
        sha = token_sha256(raw)
        now = time.time()
        hit = self._cache.get(sha)
        if hit is not None and hit[0] > now:
            return hit[1]
        self._cache.pop(sha, None)
        self.lookups += 1
        claims = await self.mcpd.introspect_oauth(raw)
        if not claims.get("active"):
            return None
        until = min(now + self.ttl, float(claims.get("exp") or now))
        if until > now:
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            self._cache[sha] = (until, claims)
        return claims
