"""The CLI's config file: named contexts (mcpd server + user + session token).

The file's path and format are the client's (:mod:`client.login`); here: changing the
contexts and writing the file, atomically with mode 0600 because it holds session tokens.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from client.login import DEFAULT_SERVER, LoginFile, config_path
from client.login import SavedLogin as Context

__all__ = ["DEFAULT_SERVER", "Config", "Context", "config_path", "public"]


def public(ctx: Context) -> dict[str, Any]:
    """A context as shown to the user: the token masked."""
    return {"server": ctx.server, "user": ctx.user, "token": "***" if ctx.token else None}


class Config(LoginFile):
    @classmethod
    def load(cls, path: Path | None = None) -> Config:
        return cls.read(path)

    def save(self, path: Path | None = None) -> None:
        path = path or config_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".yaml")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                yaml.safe_dump(self.data(), f, sort_keys=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
