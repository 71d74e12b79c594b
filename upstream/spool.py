"""An audit spool: records on disk before their calls are answered, kept until they are
committed where they belong (mcplocal's: by mcpd; mcpd's own, on SQLite: in its database).

A directory of append-only segment files (``seg-<pid>-<n>.jsonl``), one JSON record a line.
With ``fsync`` on (mcplocal's default) :meth:`Spool.append` hands a record to a group commit
(:mod:`upstream.commit`): one writer thread appends every record that arrived meanwhile with
one ``write`` and one ``fsync``; the call waits for that, and only then answers. With
``fsync`` off the record is appended at once, by the caller's own thread, with one
``write`` (a few microseconds; a thread hop would cost ten times that): it then survives
the process's death, not the machine's - as a commit of SQLite's at ``synchronous=NORMAL``
in WAL mode does. A process killed at any moment therefore leaves every answered call's
record in a segment. What a torn last line holds (a write cut short) was never answered,
and is skipped.

Delivery reads records in order from the oldest segment (:meth:`Spool.unsent`) and, once
they are committed, moves that segment's mark on (:meth:`Spool.sent`); a segment wholly
sent is deleted. The mark lives in memory only: after a crash a segment is sent again from
its start, and the receiver, which keys records by their id, records each once.

A process holds an exclusive ``flock`` on each segment it owns; a segment nobody holds
(its writer died) is adopted by the next process that looks (:meth:`Spool.adopt`), so
``mcplocal stdio`` sessions sharing a directory pick up each other's leftovers. The spool
is bounded (``max_bytes``): when a record would not fit, :attr:`full` is True and the
caller refuses the call rather than answer it unaudited.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

from upstream.commit import GroupCommit

log = logging.getLogger("mcplocal.audit")

SEGMENT_BYTES = 1024 * 1024  # a segment is closed past this size (and deleted once sent)
_PREFIX = "seg-"


class SpoolFull(Exception):
    """The spool holds ``max_bytes``: no record is taken until some are committed."""


@dataclass(eq=False)
class _Segment:
    path: Path
    fd: int  # open (read-write, appending, when it is the active one); flock'ed
    written: int  # bytes of whole lines
    sent: int = 0  # bytes mcpd has committed

    def close(self) -> None:
        os.close(self.fd)


class Spool:
    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        fsync: bool = True,
        limit_setting: str = "MCPLOCAL_AUDIT_SPOOL_MAX_BYTES",
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.dir = directory
        self.max_bytes = max_bytes
        self.limit_setting = limit_setting  # the setting of max_bytes, named when full
        self.fsync = fsync
        self._lock = threading.Lock()  # the writer thread vs. roll/delete
        self._segments: list[_Segment] = []  # oldest first; the active one last, if any
        self._active: _Segment | None = None
        self._names = count(1)
        self._reserved = 0  # bytes of records handed in, not yet written
        self.bytes = 0  # on disk in segments this process holds
        self.records = 0  # records appended by this process
        self.written = 0  # bytes appended by this process
        self.refused = 0  # records (and calls, mcplocal.audit) refused: the spool was full
        self.writes = 0  # appends (each with its fsync, with ``fsync`` on): many records each
        self._commit: GroupCommit[bytes] = GroupCommit(self._write)
        self.adopt()

    # -- writing -------------------------------------------------------------------------

    @property
    def full(self) -> bool:
        """No room for another record (of a typical size): calls are refused meanwhile."""
        return self.bytes + self._reserved + 4096 > self.max_bytes

    async def append(self, record: dict[str, Any]) -> None:
        """Write ``record`` (durably, with ``fsync``; without, at once) before returning;
        :class:`SpoolFull` when it does not fit, ``OSError`` when the disk refuses it."""
        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        if self.bytes + self._reserved + len(line) > self.max_bytes:
            self.refused += 1
            raise SpoolFull(
                f"the audit spool in {self.dir} is full ({self.max_bytes} bytes, "
                f"{self.limit_setting}): its records have not been committed yet"
            )
        if not self.fsync:
            self._write([line])
            return
        self._reserved += len(line)
        try:
            await self._commit.submit(line)
        finally:
            self._reserved -= len(line)

    def _write(self, lines: list[bytes]) -> None:
        data = b"".join(lines)
        with self._lock:
            seg = self._active
            if seg is None:
                seg = self._active = self._open()
            os.write(seg.fd, data)  # O_APPEND: one write, whole lines
            if self.fsync:
                os.fsync(seg.fd)
            self.writes += 1
            seg.written += len(data)
            self.bytes += len(data)
            self.written += len(data)
            self.records += len(lines)
            if seg.written >= SEGMENT_BYTES:
                self._active = None  # the next record starts a new segment

    def _open(self) -> _Segment:
        while True:
            path = self.dir / f"{_PREFIX}{os.getpid()}-{next(self._names):06d}.jsonl"
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
                break
            except FileExistsError:  # left by an earlier process with this pid
                continue
        fcntl.flock(fd, fcntl.LOCK_EX)
        if self.fsync:  # the new name survives a power loss too
            dfd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        seg = _Segment(path, fd, 0)
        self._segments.append(seg)
        return seg

    # -- adopting what a dead process left -----------------------------------------------

    def adopt(self) -> int:
        """Take over every segment no live process holds; the number of records in them."""
        mine = {s.path for s in self._segments}
        found = 0
        for path in sorted(self.dir.glob(f"{_PREFIX}*.jsonl"), key=_age):
            if path in mine:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # another process took and finished it
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # its writer is alive
            if not path.exists():  # sent and deleted by the process we raced
                os.close(fd)
                continue
            data = os.pread(fd, os.fstat(fd).st_size, 0)
            whole = data.rfind(b"\n") + 1  # a torn last line was never answered
            if whole == 0:  # nothing in it to send
                path.unlink(missing_ok=True)
                os.close(fd)
                continue
            with self._lock:  # before the active segment: oldest first
                at = len(self._segments) - (self._active is not None)
                self._segments.insert(at, _Segment(path, fd, whole))
                self.bytes += whole
            found += data[:whole].count(b"\n")
        if found:
            log.info("audit spool: %d records left by an earlier process, to send", found)
        return found

    # -- delivering ----------------------------------------------------------------------

    def unsent(
        self, limit: int, max_bytes: int = SEGMENT_BYTES
    ) -> tuple[_Segment | None, list[bytes], int]:
        """Up to ``limit`` records not yet committed by mcpd, spanning ``max_bytes`` at most
        (the first one whatever its size), from the oldest segment that has any: (that
        segment, the records as JSON lines, the bytes they span)."""
        with self._lock:
            segments = list(self._segments)
        for seg in segments:
            if seg.sent >= seg.written:
                continue
            data = os.pread(seg.fd, min(seg.written - seg.sent, 4 * 1024 * 1024), seg.sent)
            records: list[bytes] = []
            used = 0
            while len(records) < limit:
                end = data.find(b"\n", used)
                if end < 0 or (records and end >= max_bytes):
                    break
                records.append(data[used:end])  # mcpd refuses what is not a record
                used = end + 1
            return seg, records, used
        return None, [], 0

    def sent(self, seg: _Segment, nbytes: int) -> None:
        """mcpd committed ``nbytes`` more of ``seg``; a segment wholly sent is deleted
        (the active one too: the next record opens a new one)."""
        with self._lock:
            seg.sent += nbytes
            if seg.sent < seg.written:
                return
            if seg is self._active:
                self._active = None
            self._segments.remove(seg)
            self.bytes -= seg.written
            seg.path.unlink(missing_ok=True)
            seg.close()

    def newest(self, seg: _Segment) -> bool:
        """Whether no segment was opened (or adopted) after ``seg``."""
        with self._lock:
            return bool(self._segments) and self._segments[-1] is seg

    @property
    def pending(self) -> int:
        """Bytes on disk that mcpd has not committed yet."""
        with self._lock:
            return sum(s.written - s.sent for s in self._segments)

    def close(self) -> None:
        with self._lock:
            for seg in self._segments:
                seg.close()
            self._segments.clear()
            self._active = None


def _age(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
