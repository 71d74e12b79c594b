"""The CLI's config file: named contexts (mcpd server + user + session token).

Kept at ``$MCPCTL_CONFIG`` or ``<user config dir>/mcpctl/config.yaml``, written
atomically with mode 0600 because it holds session tokens.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
import yaml

DEFAULT_SERVER = "http://127.0.0.1:8420"


def config_path() -> Path:
    env = os.environ.get("MCPCTL_CONFIG")
    if env:
        return Path(env)
    return Path(platformdirs.user_config_dir("mcpctl", appauthor=False)) / "config.yaml"


@dataclass
class Context:
    server: str = DEFAULT_SERVER
    user: str | None = None
    token: str | None = None

    def public(self) -> dict[str, Any]:
        return {"server": self.server, "user": self.user, "token": "***" if self.token else None}


@dataclass
class Config:
    current: str = "default"
    contexts: dict[str, Context] = field(default_factory=lambda: {"default": Context()})

    @classmethod
    def load(cls, path: Path | None = None) -> Config:
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
            contexts[str(name)] = Context(
                server=str(spec.get("server") or DEFAULT_SERVER),
                user=spec.get("user"),
                token=spec.get("token"),
            )
        return cls(
            current=str(raw.get("currentContext") or "default"),
            contexts=contexts or {"default": Context()},
        )

    def save(self, path: Path | None = None) -> None:
        path = path or config_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "currentContext": self.current,
            "contexts": {
                name: {k: v for k, v in vars(ctx).items() if v is not None}
                for name, ctx in sorted(self.contexts.items())
            },
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".yaml")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                yaml.safe_dump(data, f, sort_keys=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def context(self, name: str | None = None) -> Context:
        key = name or self.current
        if key not in self.contexts:
            raise ValueError(
                f"no context `{key}`; contexts: {', '.join(sorted(self.contexts)) or 'none'}"
            )
        return self.contexts[key]
