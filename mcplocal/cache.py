"""A file cache for pipeline stage outputs: content-addressed, bounded in bytes and in age.

A key is the SHA-256 (64 lowercase hex characters) of the bytes it names, so equal outputs
share one file and a reader can check what it read. Files live at ``root/<key[:2]>/<key>``.
Besides content, the cache keeps *memos* (``root/<key[:2]>/<key>.memo``): bytes kept under
the hash of what they were derived from (a summary under the hash of its input).

Several threads, processes and replicas may share one directory:

* a writer writes a temporary file in the destination's directory, syncs it and renames
  it into place, so a reader sees a whole file or none (and content is checked against its
  key on every read, so even a file torn by a crash is never returned);
* eviction stats, re-checks and unlinks file by file, and a file that vanishes or is used
  again meanwhile is simply skipped;
* nothing is only in memory: the size is recomputed by a directory scan at start, on every
  eviction and at least every minute, so a restarted mcplocal finds what was there.

Age is measured from the last write or read (``get`` touches a file's mtime): eviction
first removes files older than ``max_age_seconds``, then the least recently used until the
total is at most ``max_bytes``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_CACHE_DIR", "CacheError", "FileCache"]

log = logging.getLogger("mcplocal.cache")

DEFAULT_CACHE_DIR = Path("/var/lib/mcplocal/cache")

_KEY = re.compile(r"[0-9a-f]{64}")
_SHARD = re.compile(r"[0-9a-f]{2}")
_MEMO = ".memo"
_TMP = ".tmp-"
_STALE_TMP_SECONDS = 3600.0  # a temporary file this old was left by a writer that died
_RESCAN_SECONDS = 60.0  # other processes write too: look at the real total this often


class CacheError(RuntimeError):
    """The cache directory cannot be created, read or written."""


def _check_key(key: str) -> str:
    """``key`` if it is one (checked before any path is built from it), else ValueError."""
    if not isinstance(key, str) or _KEY.fullmatch(key) is None:
        raise ValueError("a cache key is 64 lowercase hex characters (a SHA-256)")
    return key


class FileCache:
    """Content-addressed files under ``root``, at most ``max_bytes`` and ``max_age_seconds``."""

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int = 512 * 1024 * 1024,
        max_age_seconds: float = 7 * 24 * 3600,
    ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ValueError("`max_bytes` must be a positive integer")
        if not max_age_seconds > 0:
            raise ValueError("`max_age_seconds` must be a positive number of seconds")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.max_age_seconds = float(max_age_seconds)
        self._lock = threading.Lock()
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.root, prefix=_TMP + "probe-")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise self._error("cannot be created or written", exc) from exc
        self._total = 0
        self._scanned = 0.0
        self.evict()

    def _error(self, what: str, exc: OSError) -> CacheError:
        return CacheError(
            f"cache directory `{self.root}` {what} ({exc.strerror or exc}): make it a "
            "directory mcplocal's user can write, or choose another one "
            "(MCPLOCAL_CACHE_DIR, or --cache-dir)"
        )

    # -- content ----------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        """Keep ``data``; return its key. Keeping the same bytes again only marks them used."""
        key = hashlib.sha256(data).hexdigest()
        self._write(self._path(key), data)
        return key

    def get(self, key: str) -> bytes | None:
        """The bytes kept under ``key``, or None if missing or older than the age bound."""
        path = self._path(key)
        data = self._read(path)
        if data is not None and hashlib.sha256(data).hexdigest() != key:
            log.warning("cache file %s does not match its key: removed", path)
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        return data

    def put_json(self, obj: Any) -> str:
        """Keep ``obj`` as canonical JSON (sorted keys); equal objects get equal keys."""
        return self.put(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())

    def get_json(self, key: str) -> Any | None:
        """The object kept under ``key`` by :meth:`put_json`; ValueError if it is not JSON."""
        data = self.get(key)
        return None if data is None else json.loads(data)

    # -- memos ------------------------------------------------------------------------------

    def put_memo(self, key: str, data: bytes) -> None:
        """Keep ``data`` under ``key``, a SHA-256 of what ``data`` was derived from."""
        self._write(self._path(key, _MEMO), data)

    def get_memo(self, key: str) -> bytes | None:
        """What :meth:`put_memo` kept under ``key``, or None (missing or too old)."""
        return self._read(self._path(key, _MEMO))

    # -- files ------------------------------------------------------------------------------

    def _path(self, key: str, suffix: str = "") -> Path:
        key = _check_key(key)
        return self.root / key[:2] / (key + suffix)

    def _write(self, path: Path, data: bytes) -> None:
        try:
            os.utime(path)  # kept already (by us or by another writer): now recently used
            return
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._error("cannot be written", exc) from exc
        try:
            try:
                path.parent.mkdir(mode=0o700, exist_ok=True)
            except FileNotFoundError:  # the whole directory was removed under us
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise self._error("cannot be written", exc) from exc
        with self._lock:
            self._total += len(data)
            due = self._total > self.max_bytes or time.monotonic() - self._scanned > _RESCAN_SECONDS
        if due:
            self.evict()

    def _read(self, path: Path) -> bytes | None:
        """The file's bytes, or None if it is missing or expired (then it is removed)."""
        try:
            with path.open("rb") as f:
                mtime = os.fstat(f.fileno()).st_mtime
                if time.time() - mtime > self.max_age_seconds:
                    self._remove(path, mtime)
                    return None
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error("cannot be read", exc) from exc
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: evicted last
        return data

    # -- bounds -----------------------------------------------------------------------------

    def _scan(self, now: float) -> list[tuple[float, int, str]]:
        """(mtime, size, path) of every entry; removes temporary files left by dead writers."""
        entries: list[tuple[float, int, str]] = []
        try:
            shards = [e.path for e in os.scandir(self.root) if _SHARD.fullmatch(e.name)]
        except FileNotFoundError:
            return entries
        except OSError as exc:
            raise self._error("cannot be read", exc) from exc
        for shard in shards:
            try:
                files = list(os.scandir(shard))
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                raise self._error("cannot be read", exc) from exc
            for entry in files:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                name = entry.name
                if name.startswith(_TMP):
                    if now - st.st_mtime > _STALE_TMP_SECONDS:
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)
                    continue
                if _KEY.fullmatch(name.removesuffix(_MEMO)) and entry.is_file(
                    follow_symlinks=False
                ):
                    entries.append((st.st_mtime, st.st_size, entry.path))
        return entries

    def _remove(self, path: Path | str, mtime: float) -> bool | None:
        """Unlink ``path`` unless it was used since it was seen at ``mtime``: True if this
        call removed it, False if it was already gone, None if it is still there."""
        try:
            if os.stat(path).st_mtime != mtime:
                return None
            os.unlink(path)
            return True
        except FileNotFoundError:
            return False  # removed by another process: gone all the same
        except OSError as exc:
            log.warning("cannot remove cache file %s: %s", path, exc.strerror or exc)
            return None

    def evict(self) -> int:
        """Remove expired files, then the least recently used until the total is at most
        ``max_bytes``. Returns the bytes this call freed."""
        now = time.time()
        entries = self._scan(now)
        entries.sort()
        total = sum(size for _, size, _ in entries)
        freed = 0
        for mtime, size, path in entries:
            if now - mtime <= self.max_age_seconds and total <= self.max_bytes:
                break  # oldest first: nothing after this one is expired either
            removed = self._remove(path, mtime)
            if removed is None:
                continue  # used again since the scan, or cannot be removed: still there
            freed += size if removed else 0
            total -= size
        with self._lock:
            self._total = total
            self._scanned = time.monotonic()
        return freed
