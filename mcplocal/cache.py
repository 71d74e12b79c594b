"""A file cache for pipeline outputs: content-addressed, bounded in bytes and age.

Keys are the SHA-256 of the bytes, so equal outputs share one file and a key names its
content. Files live under ``root/<first two hex chars>/<key>``. Writes go to a temporary
file in the same directory and are renamed into place, so readers (and other processes or
replicas sharing the directory) never see a partial file; eviction tolerates files that
vanish under it. Nothing is only in memory: a restarted mcplocal finds what was there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_CACHE_DIR = Path("/var/lib/mcplocal/cache")
_KEY = re.compile(r"^[0-9a-f]{64}$")


class CacheError(Exception):
    """The cache directory cannot be used."""


class FileCache:
    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int = 512 * 1024 * 1024,
        max_age_seconds: float = 7 * 24 * 3600,
    ) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.max_age = max_age_seconds
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-"):
                pass  # writable
        except OSError as exc:
            raise CacheError(
                f"cache directory {self.root} is not usable ({exc.strerror}): create it writable "
                "for mcplocal, or point MCPLOCAL_CACHE_DIR (--cache-dir) elsewhere"
            ) from exc
        self._total = self._scan()[0]

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError("a cache key is 64 lowercase hex characters")
        return self.root / key[:2] / key

    def _scan(self) -> tuple[int, list[tuple[float, int, Path]]]:
        total, files = 0, []
        for sub in self.root.iterdir():
            if not sub.is_dir() or len(sub.name) != 2:
                continue
            for path in sub.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    st = path.stat()
                    if path.name.startswith(".tmp-"):
                        if time.time() - st.st_mtime > 3600:  # a writer died mid-write
                            path.unlink(missing_ok=True)
                        continue
                    total += st.st_size
                    files.append((st.st_mtime, st.st_size, path))
        return total, files

    def put(self, data: bytes) -> str:
        """Keep ``data``; its key is its SHA-256."""
        key = hashlib.sha256(data).hexdigest()
        self.put_at(key, data)
        return key

    def put_at(self, key: str, data: bytes) -> None:
        """Keep ``data`` under ``key``, a SHA-256 of what it was derived from (a memo)."""
        path = self._path(key)
        if path.exists():
            with contextlib.suppress(FileNotFoundError):
                os.utime(path)
            return
        path.parent.mkdir(exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._total += len(data)
        if self._total > self.max_bytes:
            self.evict()

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            st = path.stat()
            if time.time() - st.st_mtime > self.max_age:
                path.unlink(missing_ok=True)
                return None
            data = path.read_bytes()
            os.utime(path)  # recently used: evicted last
        except FileNotFoundError:
            return None
        return data

    def put_json(self, obj: Any) -> str:
        return self.put(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())

    def get_json(self, key: str) -> Any | None:
        data = self.get(key)
        return json.loads(data) if data is not None else None

    def evict(self) -> int:
        """Remove expired files, then the least recently used until under ``max_bytes``."""
        total, files = self._scan()
        freed = 0
        now = time.time()
        files.sort()
        for mtime, size, path in files:
            if now - mtime <= self.max_age and total - freed <= self.max_bytes:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                freed += size
        self._total = total - freed
        return freed
