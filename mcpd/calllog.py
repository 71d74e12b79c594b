"""mcpd's own ``tools/call`` records (and the denies of prompts and resources its MCP
endpoint audits): each written before its call is answered, however many arrive.

On PostgreSQL a record is committed to the database before the call is answered, in a
group commit (:mod:`upstream.commit`): many concurrent calls share one commit, a lone call
waits for one.

On SQLite (one machine: the database file is on this disk) a record goes to a spool first
(:mod:`upstream.spool`, a directory beside the database: ``<file>-calls``), appended by
the event loop's own thread with one ``write``, and the call is answered; a drainer
commits what the spool holds to the database in batches, within ``linger`` seconds
(``MCPD_CALL_SPOOL_LINGER``; at once for a reader of the audit log: :meth:`CallLog.flush`).
That is as durable as SQLite's own commit here (WAL at ``synchronous=NORMAL``: a killed
process loses nothing, a power loss may lose the last commits), and it saves what a commit
per call costs: a thread hop, a transaction, the WAL's pages - about a quarter of a
relayed call's CPU (bench/proxy.py's ``mcpd_raw``). A record the database refuses stays
in the spool, tried again; what a killed mcpd left there is committed by the next one to
start (records are keyed by their event id: each is recorded once). A full spool
(``MCPD_CALL_SPOOL_MAX_BYTES``) refuses records, and so the calls they record.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from mcpd import audit
from upstream.commit import GroupCommit
from upstream.spool import Spool

log = logging.getLogger("mcpd.calllog")

BATCH = 1000  # records a commit, at most
RETRY = 1.0  # seconds: after a failed commit, before the next try


def spool_dir(database_file: str) -> Path:
    """Where the spool of an SQLite database in ``database_file`` lives."""
    return Path(f"{database_file}-calls")


class CallLog:
    """``submit(row)`` returns once the record (:func:`mcpd.audit.row`) is written: in the
    database (``spool`` None), or in the spool ``spool()`` opens (on first use: a process
    that records no call opens none), committed later by :meth:`run`."""

    def __init__(
        self,
        sessions: Callable[[], Session],
        spool: Callable[[], Spool] | None,
        *,
        linger: float = 0.1,
    ) -> None:
        self._sessions = sessions
        self.linger = linger  # seconds records wait for others to share their commit
        self._open_spool = spool
        self._spool: Spool | None = None
        self._commit = GroupCommit(self._write) if spool is None else None
        self._flushing = threading.Lock()  # one commit of the spool at a time
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="call-log")
        self._wake: asyncio.Event | None = None
        self.last_error: str | None = None

    @property
    def spool(self) -> Spool | None:
        if self._spool is None and self._open_spool is not None:
            self._spool = self._open_spool()
        return self._spool

    async def submit(self, row: dict[str, Any]) -> None:
        spool = self.spool
        if spool is None:
            assert self._commit is not None
            await self._commit.submit(row)
            return
        await spool.append({**row, "time": row["time"].isoformat()})
        if self._wake is not None:
            self._wake.set()

    def _write(self, rows: list[dict[str, Any]]) -> None:
        with self._sessions() as session:
            audit.write_calls(session, rows)

    def flush(self) -> int:
        """Commit every record the spool holds now (from any thread; blocks while another
        flush runs); the number committed. The database's error, if it refuses them
        (they stay in the spool)."""
        spool = self.spool
        if spool is None:
            return 0
        with self._flushing:
            done = 0
            while True:
                seg, lines, used = spool.unsent(BATCH)
                if seg is None:
                    return done
                rows = [r for r in map(_decoded, lines) if r is not None]
                if rows:
                    self._write(rows)
                spool.sent(seg, used)
                done += len(rows)

    async def run(self) -> None:
        """Commit the spool's records as they come (a batch ``linger`` seconds after the
        first of them), until cancelled; what is left then is the caller's to
        :meth:`flush` (mcpd's lifespan does, on the way out)."""
        if self.spool is None:
            return
        self._wake = wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        wake.set()  # what an earlier process left
        try:
            while True:
                await wake.wait()
                await asyncio.sleep(self.linger)
                wake.clear()
                try:
                    await loop.run_in_executor(self._thread, self.flush)
                    self.last_error = None
                except Exception as exc:
                    if self.last_error is None:
                        log.warning("call records stay in the spool for now: %s", exc)
                    self.last_error = str(exc)
                    await asyncio.sleep(RETRY)
                    wake.set()
        finally:
            self._wake = None

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        if self._spool is not None:
            self._spool.close()


def _decoded(line: bytes) -> dict[str, Any] | None:
    try:
        row = json.loads(line)
        row["time"] = datetime.fromisoformat(row["time"])
    except (ValueError, KeyError, TypeError) as exc:
        log.error("a call record in the spool is unreadable, skipped: %s", exc)
        return None
    return row  # type: ignore[no-any-return]
