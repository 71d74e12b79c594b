"""Where a stdio server's command is found: a documented search path, and an error that
names the command and every directory searched.

A command with a ``/`` is used as given. Any other is looked up, in order, in

1. the ``bin`` directory of the environment mcpd runs from (``sys.prefix``/bin: the
   ``.venv/bin`` that ``make run`` installs into, so ``pip install mcp-server-time`` there
   is enough), then
2. the ``PATH`` mcpd was started with.

The child gets that same search path as its ``PATH``, so a wrapper script (``npx``,
``uvx``) finds its siblings too.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from upstream.errors import SpecError


class CommandNotFound(SpecError):
    """A stdio server's command is on none of the searched directories."""


def search_path(path: str | None = None) -> str:
    """The environment's bin directory, then ``path`` (default: this process's PATH),
    without duplicates."""
    dirs = [str(Path(sys.prefix) / "bin")]
    start = os.environ.get("PATH", os.defpath) if path is None else path
    dirs += [d for d in start.split(os.pathsep) if d]
    seen: list[str] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return os.pathsep.join(seen)


def resolve_argv(argv: Sequence[str], env: dict[str, str]) -> list[str]:
    """``argv`` with its command resolved on :func:`search_path`; ``env``'s PATH is set to
    that search path. Raises :class:`CommandNotFound` naming the command and the PATH."""
    if not argv:
        raise CommandNotFound("the server has no command")
    command, *args = argv
    env["PATH"] = search_path(env.get("PATH"))
    if "/" in command:
        if not os.access(command, os.X_OK) or os.path.isdir(command):
            raise CommandNotFound(f"command `{command}` does not exist or is not executable")
        return [command, *args]
    found = shutil.which(command, path=env["PATH"])
    if found is None:
        raise CommandNotFound(f"command `{command}` not found on PATH {env['PATH']}")
    return [found, *args]
