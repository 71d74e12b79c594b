"""What a stdio server that mcpd runs cannot reach of mcpd: its memory, environment,
database, secrets key and logs (the mechanisms are in :mod:`upstream.sandbox`).

* :func:`harden_process` - at ``mcpd serve`` start: non-dumpable, and the secrets it was
  given in its environment dropped from ``os.environ`` once the settings are read (the
  children get only :data:`upstream.stdio.BASE_ENV` and what their server declares);
* :func:`stdio_sandbox` - the :class:`~upstream.sandbox.Sandbox` for the settings: it hides
  mcpd's data directory, the SQLite database, the key file and the log directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
from pathlib import Path

import platformdirs
from sqlalchemy.engine import make_url

from mcpd.settings import Settings
from upstream.sandbox import Sandbox, forbid_dumping

log = logging.getLogger(__name__)

# Read into Settings at start, then gone from the environment.
SECRET_ENV = ("MCPD_SECRETS_KEY", "MCPD_BOOTSTRAP_PASSWORD", "MCPD_DATABASE_URL")


def harden_process() -> None:
    """Call once the settings are read: the process is non-dumpable, and the secrets of its
    environment are no longer in ``os.environ`` (nor in any child's), nor in the block the
    kernel shows as ``/proc/<pid>/environ`` (overwritten: even root reads zeros there)."""
    if forbid_dumping():
        log.info("mcpd is non-dumpable: its memory and environment are closed to its children")
    present = [name for name in SECRET_ENV if name in os.environ]
    for name in present:
        os.environ.pop(name)  # unsetenv: libc's environ no longer points at the original
    if present:
        _wipe_environ_block(set(present))


def _wipe_environ_block(names: set[str]) -> None:
    """Zero the ``NAME=value`` strings of ``names`` where the kernel put the environment at
    exec (``env_start``..``env_end`` in /proc/self/stat). Linux only, best effort."""
    if not sys.platform.startswith("linux"):
        return
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b") ", 1)[1].split()
        start, end = int(fields[47]), int(fields[48])  # fields 50 and 51 of proc(5)
        with open("/proc/self/environ", "rb") as f:
            block = f.read()
    except (OSError, IndexError, ValueError):  # pragma: no cover - an old or odd kernel
        log.warning("could not wipe the secrets from mcpd's initial environment block")
        return
    offset = 0
    for entry in block.split(b"\0"):
        name = entry.split(b"=", 1)[0].decode("utf-8", "replace")
        if name in names and start + offset + len(entry) <= end:
            ctypes.memset(start + offset, 0, len(entry))
        offset += len(entry) + 1


def hidden_paths(settings: Settings) -> tuple[Path, ...]:
    """mcpd's own files: directories first, then the files in them (hidden one by one
    where their directory must stay visible)."""
    dirs = [
        Path(platformdirs.user_data_dir("mcpd", appauthor=False)),
        settings.log_dir,
        settings.secrets_key_file.parent,
    ]
    files = [settings.secrets_key_file]
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        db = Path(url.database).absolute()
        dirs.append(db.parent)
        files += [db.with_name(db.name + suffix) for suffix in ("", "-wal", "-shm", "-journal")]
    return tuple(Path(os.path.abspath(p)) for p in [*dirs, *files] if p != Path("/"))


def stdio_sandbox(settings: Settings) -> Sandbox:
    """The sandbox stdio children run in (probed now: the log says which isolation)."""
    # it must exist to be hidden; the first server's stderr would create it anyway
    with contextlib.suppress(OSError):
        settings.log_dir.mkdir(parents=True, exist_ok=True)
    sandbox = Sandbox(
        mode=settings.stdio_sandbox,
        hide=hidden_paths(settings),
        binds=tuple(settings.stdio_sandbox_binds),
        user=settings.stdio_user,
    )
    log.info("stdio servers' isolation: %s", sandbox.description)
    if os.geteuid() == 0 and settings.stdio_user is None and not sandbox.probe():
        log.warning(
            "stdio servers run as root without a sandbox: nothing keeps them from mcpd's "
            "memory and files (set MCPD_STDIO_USER, or make bubblewrap work)"
        )
    return sandbox
