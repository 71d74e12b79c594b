"""The user's saved login: what ``mcpctl login`` wrote (mcpd's URL, the user, the session
token), per named context, in the config file.

The file's format is defined here, once: ``$MCPCTL_CONFIG`` or
``<user config dir>/mcpctl/config.yaml``, a YAML mapping::

    currentContext: default
    contexts:
      default: {server: http://127.0.0.1:8420, user: alice@example.com, token: mcpctl_ses_...}

:func:`saved_login` reads it for a program that only needs the login (mcplocal); the CLI's
``cli.config`` builds contexts and writing on :class:`LoginFile`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Self

import platformdirs
import yaml

__all__ = ["DEFAULT_SERVER", "LoginFile", "SavedLogin", "config_path", "saved_login"]

DEFAULT_SERVER: Final = "http://127.0.0.1:8420"


def config_path() -> Path:
    env = os.environ.get("MCPCTL_CONFIG")
    if env:
        return Path(env)
    return Path(platformdirs.user_config_dir("mcpctl", appauthor=False)) / "config.yaml"


@dataclass
class SavedLogin:
    """One context: an mcpd, and who is logged in to it (``token`` None: nobody)."""

    server: str = DEFAULT_SERVER
    user: str | None = None
    token: str | None = None


@dataclass
class LoginFile:
    """The config file's content: the current context's name and every context."""

    current: str = "default"
    contexts: dict[str, SavedLogin] = field(default_factory=lambda: {"default": SavedLogin()})

    @classmethod
    def read(cls, path: Path | None = None) -> Self:
        """The file at ``path`` (default: :func:`config_path`); a missing file is empty.
        Raises ValueError, saying what is wrong, for an unreadable or malformed file."""
        path = path or config_path()
        if not path.exists():
            return cls()
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read config file {path}: {exc}") from exc
        if not isinstance(raw, dict):
            raise ValueError(f"config file {path} is not a mapping")
        contexts = {}
        for name, spec in (raw.get("contexts") or {}).items():
            if not isinstance(spec, dict):
                raise ValueError(f"config file {path}: context `{name}` is not a mapping")
            contexts[str(name)] = SavedLogin(
                server=str(spec.get("server") or DEFAULT_SERVER),
                user=spec.get("user"),
                token=spec.get("token"),
            )
        return cls(
            current=str(raw.get("currentContext") or "default"),
            contexts=contexts or {"default": SavedLogin()},
        )

    def data(self) -> dict[str, Any]:
        """The mapping the file holds, as it is written (unset fields left out)."""
        return {
            "currentContext": self.current,
            "contexts": {
                name: {k: v for k, v in vars(ctx).items() if v is not None}
                for name, ctx in sorted(self.contexts.items())
            },
        }

    def context(self, name: str | None = None) -> SavedLogin:
        """The context ``name`` (default: the current one); ValueError if there is none."""
        key = name or self.current
        if key not in self.contexts:
            raise ValueError(
                f"no context `{key}`; contexts: {', '.join(sorted(self.contexts)) or 'none'}"
            )
        return self.contexts[key]


def saved_login(context: str | None = None, path: Path | None = None) -> SavedLogin:
    """The login of ``context`` (default: the current one) in the config file."""
    return LoginFile.read(path).context(context)
