"""Every ``tools/call`` audited in mcpd, exactly once, after a crash too.

:meth:`AuditReporter.report` writes the call's record to the spool (:mod:`upstream.spool`)
and returns once it is on disk; only then is the call answered. A background task
(:meth:`AuditReporter.run`) sends the spool's records in order, in batches, to
``POST /api/v1/auditevents`` and moves the spool's mark on once mcpd has committed them.
Woken by a record, it lingers ``linger`` seconds (250 ms) first, so that the records of a
busy moment share a request (and mcpd's commit) instead of one request each: a request
costs mcpd milliseconds of CPU whatever its size, a record in it ~0.05 ms, and under a
steady load the linger, not the batch's bounds, sets its size (~125 records at 500/s).
Each record carries its own id (made at the decision): a batch sent again - after mcpd
went away mid-answer, or after this process restarted - is recorded once. When mcpd is
away the records wait on disk and delivery retries with a bounded backoff; when the spool
is full, :attr:`AuditReporter.full` is True and the proxy refuses calls (/readyz fails).
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2

from client import API, ApiError, AsyncMcpdClient
from client.errors import transport_error
from upstream.spool import Spool, SpoolFull

log = logging.getLogger("mcplocal.audit")

__all__ = ["AuditReporter", "CallRecord", "SpoolFull", "spool_dir_for"]

#: a batch's bytes at most: well under mcpd's body cap (1 MiB by default), which would
#: answer 413 and have each record sent alone
BATCH_BYTES = 512 * 1024
MAX_BACKOFF = 5.0  # seconds between delivery attempts while mcpd is away, at most
ADOPT_EVERY = 5.0  # seconds: how often an idle reporter looks for a dead process's segments


def spool_dir_for(base: Path, mcpd_url: str, path: str, who: str = "") -> Path:
    """The spool of one destination (mcpd, path, reporting identity) under ``base``: records
    meant for one mcpd are never sent to another."""
    key = hashlib.sha256(f"{mcpd_url.rstrip('/')}|{path}|{who}".encode()).hexdigest()[:16]
    return base / key


def _now() -> str:
    return datetime.now(UTC).isoformat()


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
    reason: str | None = None  # the deciding policy line
    policy_revision: str | None = None
    kind: str | None = None  # a prompt's or resource's refusal ("prompts", "resources")
    id: str = field(default_factory=lambda: str(uuid.uuid4()))  # made at the decision
    time: str = field(default_factory=_now)

    def json(self) -> dict[str, object]:
        out = {
            _CAMEL.get(f, f): v for f in _FIELDS if (v := getattr(self, f)) is not None
        }  # (not asdict: it deep-copies, and this runs once per call)
        for key in ("error", "reason"):
            if isinstance(out.get(key), str):
                out[key] = str(out[key])[:2000]
        out["requestId"] = str(out.get("requestId", ""))[:64]
        return out


_FIELDS = tuple(f.name for f in fields(CallRecord))
_CAMEL = {
    "token_name": "tokenName",
    "token_sha": "tokenSha",
    "duration_ms": "durationMs",
    "request_id": "requestId",
    "policy_revision": "policyRevision",
}


class AuditReporter:
    def __init__(
        self,
        mcpd_url: str,
        auth: httpx2.Auth | str,
        spool_dir: Path,
        *,
        path: str = "/api/v1/auditevents",
        max_bytes: int = 256 * 1024 * 1024,
        fsync: bool = True,
        interval: float = 0.2,
        batch: int = 500,
        batch_bytes: int = BATCH_BYTES,
        linger: float = 0.25,
    ) -> None:
        if not path.startswith(API + "/"):
            raise ValueError(f"`{path}` is not a path of mcpd's API ({API}/...)")
        self.mcpd_url = mcpd_url.rstrip("/")
        self.url = self.mcpd_url + path
        self._path = path.removeprefix(API)
        self._auth = auth  # mcplocal's own credential (the client's auth flow)
        self.spool = Spool(spool_dir, max_bytes=max_bytes, fsync=fsync)
        self.interval = interval
        self.batch = batch  # records a request, at most (mcpd takes 1,000)
        self.batch_bytes = batch_bytes  # and bytes (a record over it goes alone)
        self.linger = linger
        self._wake = anyio.Event()
        self.sent = 0  # records mcpd committed (or already had)
        self.rejected = 0  # records mcpd refused as malformed (logged, never resent)
        self.last_error: str | None = None
        self.last_sent_at: float | None = None

    @property
    def full(self) -> bool:
        return self.spool.full

    def refuse(self) -> str:
        """A call refused because the spool is full: counted; why, for its answer."""
        self.spool.refused += 1
        return self.spool_full_reason

    @property
    def spool_full_reason(self) -> str:
        return (
            f"its audit spool is full ({self.spool.bytes} of {self.spool.max_bytes} bytes, "
            f"MCPLOCAL_AUDIT_SPOOL_MAX_BYTES) and mcpd has not taken the records "
            f"({self.last_error or 'not yet'})"
        )

    async def report(self, record: CallRecord) -> None:
        """On disk before this returns (:class:`SpoolFull`, ``OSError`` when not)."""
        await self.spool.append(record.json())
        self._wake.set()

    async def run(self) -> None:
        delay = self.interval
        adopted = time.monotonic()
        async with AsyncMcpdClient(self.mcpd_url, self._auth, timeout=10.0) as mcpd:
            while True:
                with anyio.move_on_after(delay):
                    await self._wake.wait()
                if self._wake.is_set() and self.linger:
                    # the records of the next few ms go with this one: one request (and one
                    # commit in mcpd) for many records, at most ``linger`` later than alone
                    await anyio.sleep(self.linger)
                self._wake = anyio.Event()
                try:
                    await self.flush(mcpd, caught_up=True)
                    delay = self.interval
                    self.last_error = None
                except Exception as exc:  # mcpd away: the records wait on disk
                    self.last_error = f"{transport_error(exc)}"[:500]
                    log.warning("cannot send audit records to mcpd: %s", self.last_error)
                    delay = min(max(delay, 0.1) * 2, MAX_BACKOFF)
                if self.spool.pending == 0 and time.monotonic() - adopted > ADOPT_EVERY:
                    adopted = time.monotonic()
                    await anyio.to_thread.run_sync(self.spool.adopt)  # a dead stdio's leftovers

    async def flush(
        self, mcpd: AsyncMcpdClient | httpx2.AsyncClient, *, caught_up: bool = False
    ) -> None:
        """Send everything unsent, oldest first (an ``httpx2.AsyncClient`` is borrowed);
        ``caught_up``: stop after a batch short of the bounds (what came meanwhile waits for
        the next round, and its linger)."""
        if not isinstance(mcpd, AsyncMcpdClient):
            mcpd = AsyncMcpdClient(self.mcpd_url, self._auth, http=mcpd)
        while True:
            seg, lines, nbytes, newest = await anyio.to_thread.run_sync(self._next)
            if seg is None:
                return
            # short of the bounds, from the newest segment: the end of what was spooled
            last = newest and len(lines) < self.batch and nbytes < self.batch_bytes // 2
            if lines:
                await self._send(mcpd, lines)
            await anyio.to_thread.run_sync(self.spool.sent, seg, nbytes)
            self.sent += len(lines)
            self.last_sent_at = time.time()
            if caught_up and last:
                return

    def _next(self) -> tuple[Any, list[bytes], int, bool]:
        """The next batch (:meth:`Spool.unsent`), and whether its segment is the newest (in
        the worker thread: the spool's lock may wait for an fsync)."""
        seg, lines, nbytes = self.spool.unsent(self.batch, self.batch_bytes)
        return seg, lines, nbytes, seg is not None and self.spool.newest(seg)

    async def flush_quietly(self, mcpd: AsyncMcpdClient | httpx2.AsyncClient) -> None:
        """:meth:`flush` at shutdown: what mcpd does not take now waits in the spool."""
        try:
            await self.flush(mcpd)
        except Exception as exc:
            log.warning("audit records left in the spool for the next start: %s", exc)

    async def _send(self, mcpd: AsyncMcpdClient, lines: list[bytes]) -> None:
        try:
            await mcpd.send_audit_lines(lines, path=self._path)
        except ApiError as exc:
            if exc.status not in (400, 413, 422):
                raise RuntimeError(f"mcpd answered {exc.status}: {exc.text[:300]}") from None
            if len(lines) > 1:  # one bad record must not hold the others back
                for line in lines:
                    await self._send(mcpd, [line])
                return
            # mcpd will never take this one: say so, count it, move on
            self.rejected += 1
            log.error("mcpd refused audit record %r: %s", lines[0][:200], exc.text[:300])
