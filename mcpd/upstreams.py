"""mcpd's upstream configs: a stored server with its secretRefs resolved."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mcpd.models import Secret, Server
from mcpd.security import SecretBox
from upstream.errors import SpecError
from upstream.spec import HealthCheckSpec, UpstreamSpec


def load_spec(session: Session, box: SecretBox, name: str) -> UpstreamSpec | None:
    """The server ``name`` as the supervisor runs it, or None when there is no such server."""
    server = session.scalars(select(Server).where(Server.name == name)).first()
    if server is None:
        return None
    secrets: dict[str, dict[str, str]] = {}

    def resolve(values: dict[str, Any]) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in values.items():
            if isinstance(value, dict):
                secret_name, _, secret_key = str(value.get("secretRef", "")).partition("/")
                if secret_name not in secrets:
                    row = session.scalars(select(Secret).where(Secret.name == secret_name)).first()
                    secrets[secret_name] = box.open(row.ciphertext) if row else {}
                if secret_key not in secrets[secret_name]:
                    raise SpecError(
                        f"`{key}` refers to secret `{secret_name}` key `{secret_key}`, "
                        "which does not exist"
                    )
                out[key] = secrets[secret_name][secret_key]
            else:
                out[key] = str(value)
        return out

    spec = server.spec or {}
    hc = server.health_check
    health = (
        HealthCheckSpec(
            tool=hc.get("tool"),
            interval_seconds=float(hc.get("intervalSeconds", 30)),
            timeout_seconds=float(hc.get("timeoutSeconds", 10)),
        )
        if hc
        else None
    )
    if server.transport == "stdio":
        env = resolve(spec.get("env", {}))
        argv = (str(spec["command"]), *(str(a) for a in spec.get("args", [])))
        resolved: dict[str, Any] = {"argv": argv, "env": env}
        result = UpstreamSpec(name, "stdio", argv=argv, env=env, health=health)
    else:
        headers = resolve(spec.get("headers", {}))
        resolved = {"url": spec["url"], "headers": headers}
        result = UpstreamSpec(name, "http", url=str(spec["url"]), headers=headers, health=health)
    digest = hashlib.sha256(
        json.dumps([resolved, server.health_check], sort_keys=True, default=str).encode()
    ).hexdigest()
    return UpstreamSpec(**{**result.__dict__, "fingerprint": digest})
