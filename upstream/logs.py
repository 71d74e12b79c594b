"""An instance's log: its stderr and the supervisor's own events, kept in memory and on disk.

Each server has one :class:`LogBuffer` for the life of the mcpd process (restarts append to
it). The newest ``max_lines`` lines stay in a ring buffer for ``GET .../logs``; every line
also goes to ``<log_dir>/<server>.log``, rotated at ``max_file_bytes`` (one old file kept).
A server that floods stderr is still drained (a full pipe would block it), but at most
``max_lines_per_second`` lines a second are kept; the rest are counted and reported.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import anyio

MAX_LINE_CHARS = 4096


class LogBuffer:
    def __init__(
        self,
        server: str,
        log_dir: Path | None,
        *,
        max_lines: int = 2000,
        max_file_bytes: int = 10 * 1024 * 1024,
        max_lines_per_second: int = 1000,
    ) -> None:
        self.server = server
        self.path = log_dir / f"{server}.log" if log_dir is not None else None
        self.max_file_bytes = max_file_bytes
        self.max_lines_per_second = max_lines_per_second
        self._lines: deque[tuple[int, str]] = deque(maxlen=max_lines)
        self._seq = 0
        self._changed = anyio.Event()
        self._file: IO[str] | None = None
        self._file_bytes = 0
        self._window = 0.0
        self._in_window = 0
        self._dropped_in_window = 0
        self.dropped = 0
        self._closed = False

    # -- writing -----------------------------------------------------------------------------

    def append(self, text: str, *, source: str = "stderr") -> None:
        """Keep one line (``source`` "stderr", or "mcpd" for the supervisor's own events)."""
        now = time.monotonic()
        if now - self._window >= 1.0:
            if self._dropped_in_window:
                self._store(
                    f"[mcpd] {self._dropped_in_window} lines of stderr dropped "
                    f"(more than {self.max_lines_per_second} a second)"
                )
            self._window, self._in_window, self._dropped_in_window = now, 0, 0
        if source == "stderr":
            self._in_window += 1
            if self._in_window > self.max_lines_per_second:
                self._dropped_in_window += 1
                self.dropped += 1
                return
        line = text.rstrip("\r\n")
        if len(line) > MAX_LINE_CHARS:
            line = line[:MAX_LINE_CHARS] + " [truncated]"
        self._store(line if source == "stderr" else f"[mcpd] {line}")

    def _store(self, line: str) -> None:
        stamped = f"{datetime.now(UTC).isoformat(timespec='milliseconds')} {line}"
        self._seq += 1
        self._lines.append((self._seq, stamped))
        self._write_file(stamped)
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    def _write_file(self, line: str) -> None:
        if self.path is None:
            return
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8", buffering=1)
                self._file_bytes = self.path.stat().st_size
            if self._file_bytes >= self.max_file_bytes:
                self._file.close()
                self.path.replace(self.path.with_suffix(".log.1"))
                self._file = self.path.open("a", encoding="utf-8", buffering=1)
                self._file_bytes = 0
            self._file.write(line + "\n")
            self._file_bytes += len(line) + 1
        except OSError:  # a full or read-only disk must not take the instance down
            self.path = None

    def close(self) -> None:
        """mcpd is stopping: followers end, the file is closed."""
        self._closed = True
        self._changed.set()
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- reading -----------------------------------------------------------------------------

    def tail(self, n: int) -> tuple[int, list[str]]:
        """The last ``n`` lines kept, and the sequence number of the newest."""
        lines = list(self._lines)[-n:] if n > 0 else []
        return self._seq, [text for _, text in lines]

    def since(self, seq: int) -> tuple[int, list[str]]:
        return self._seq, [text for s, text in self._lines if s > seq]

    async def follow(self, n: int) -> AsyncIterator[str]:
        """The last ``n`` lines, then every new one as it comes (until cancelled)."""
        seq, lines = self.tail(n)
        for line in lines:
            yield line
        while not self._closed:
            await self._changed.wait()
            seq, lines = self.since(seq)
            for line in lines:
                yield line
