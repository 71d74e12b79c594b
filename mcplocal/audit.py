"""Every ``tools/call`` audited in mcpd, off the call path.

:meth:`AuditReporter.report` only appends to a bounded in-memory queue; a background task
sends batches to ``POST /api/v1/auditevents`` every ``interval`` seconds (sooner when a
batch fills). When mcpd is away the batch is kept and retried; past ``max_pending`` the
oldest records are dropped and counted (``dropped``), never the call itself delayed.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import asdict, dataclass

import anyio
import httpx2

from client import API, ApiError, AsyncMcpdClient
from client.errors import transport_error

log = logging.getLogger("mcplocal.audit")


@dataclass(frozen=True)
class CallRecord:
    server: str
    tool: str
    project: str
    outcome: str  # allow | deny | error
    duration_ms: float
    user: str | None = None
    token_name: str | None = None
    token_sha: str | None = None
    request_id: str = ""
    error: str | None = None

    def json(self) -> dict[str, object]:
        camel = {
            "token_name": "tokenName",
            "token_sha": "tokenSha",
            "duration_ms": "durationMs",
            "request_id": "requestId",
        }
        out = {camel.get(k, k): v for k, v in asdict(self).items() if v is not None}
        if isinstance(out.get("error"), str):
            out["error"] = str(out["error"])[:2000]
        out["requestId"] = str(out.get("requestId", ""))[:64]
        return out


class AuditReporter:
    def __init__(
        self,
        mcpd_url: str,
        auth: httpx2.Auth | str,
        *,
        path: str = "/api/v1/auditevents",
        interval: float = 0.5,
        batch: int = 200,
        max_pending: int = 50_000,
    ) -> None:
        if not path.startswith(API + "/"):
            raise ValueError(f"`{path}` is not a path of mcpd's API ({API}/...)")
        self.mcpd_url = mcpd_url.rstrip("/")
        self.url = self.mcpd_url + path
        self._path = path.removeprefix(API)
        self._auth = auth  # mcplocal's own credential (the client's auth flow)
        self.interval = interval
        self.batch = batch
        self._pending: deque[CallRecord] = deque(maxlen=max_pending)
        self._wake = anyio.Event()
        self.sent = 0
        self.dropped = 0

    def report(self, record: CallRecord) -> None:
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        self._pending.append(record)
        if len(self._pending) >= self.batch:
            self._wake.set()

    async def run(self) -> None:
        delay = self.interval
        async with AsyncMcpdClient(self.mcpd_url, self._auth, timeout=10.0) as mcpd:
            while True:
                with anyio.move_on_after(delay):
                    await self._wake.wait()
                self._wake = anyio.Event()
                try:
                    await self.flush(mcpd)
                    delay = self.interval
                except Exception as exc:  # mcpd away: keep the records, try again later
                    log.warning("cannot send audit records to mcpd: %s", transport_error(exc))
                    delay = min(delay * 2, 10.0)

    async def flush(self, mcpd: AsyncMcpdClient | httpx2.AsyncClient) -> None:
        """Send what is pending, in batches (an ``httpx2.AsyncClient`` is borrowed)."""
        if not isinstance(mcpd, AsyncMcpdClient):
            mcpd = AsyncMcpdClient(self.mcpd_url, self._auth, http=mcpd)
        while self._pending:
            chunk = [self._pending[i] for i in range(min(self.batch, len(self._pending)))]
            events = [c.json() for c in chunk]
            try:
                await mcpd.send_audit(events, path=self._path)
            except ApiError as exc:
                if exc.status not in (400, 413, 422):
                    raise RuntimeError(f"mcpd answered {exc.status}: {exc.text[:300]}") from None
                # mcpd will never take these: say, move on
                log.error("mcpd refused %d audit records: %s", len(chunk), exc.text[:300])
            for _ in chunk:
                self._pending.popleft()
            self.sent += len(chunk)
