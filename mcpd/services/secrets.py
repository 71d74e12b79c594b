"""Secrets: create, update, delete (refused while a server's secretRef uses it), reads."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mcpd.errors import Conflict
from mcpd.models import Secret, Server
from mcpd.runtime import Runtime
from mcpd.schemas.secrets import SecretIn, SecretUpdate
from mcpd.schemas.servers import secret_refs
from mcpd.services.common import check_version, get_or_404, page, taken
from mcpd.services.work import Caller, unit_of_work


def keys_in_use(db: Session, name: str) -> set[str]:
    """The keys of secret ``name`` that some server's secretRef names."""
    keys = set()
    for server in db.scalars(select(Server)):
        for ref in secret_refs(server.spec):
            sec, key = ref.split("/", 1)
            if sec == name:
                keys.add(key)
    return keys


def list_secrets(*, db: Session, limit: int, after: str | None) -> tuple[list[Secret], str | None]:
    return page(db, Secret, limit, after)


def get_secret(*, db: Session, name: str) -> Secret:
    secret: Secret = get_or_404(db, Secret, name, "secret")
    return secret


def create_secret(*, db: Session, rt: Runtime, caller: Caller, spec: SecretIn) -> Secret:
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="secrets", action="create", name=spec.name
    ) as work:
        taken(db, Secret, spec.name, "secret")
        secret = Secret(
            name=spec.name,
            keys=sorted(spec.data),
            ciphertext=rt.secret_box.seal(spec.data),
            created_by=caller.principal.display,
        )
        db.add(secret)
        work.audit(detail={"keys": sorted(spec.data)})
        work.after_commit(rt.server_changed)  # instances using it restart with the values
    return secret


def update_secret(
    *, db: Session, rt: Runtime, caller: Caller, name: str, change: SecretUpdate
) -> Secret:
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="secrets", action="update", name=name
    ) as work:
        secret = get_secret(db=db, name=name)
        check_version(secret, change.version, "secret")
        used = keys_in_use(db, name) - set(change.data)
        if used:
            raise Conflict(
                f"secret `{name}` keys {', '.join(sorted(used))} are used by a server's secretRef"
            )
        secret.keys = sorted(change.data)
        secret.ciphertext = rt.secret_box.seal(change.data)
        secret.version += 1
        work.audit(detail={"keys": sorted(change.data)})
        work.after_commit(rt.server_changed)  # instances using it restart with the values
    return secret


def delete_secret(*, db: Session, rt: Runtime, caller: Caller, name: str) -> None:
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="secrets", action="delete", name=name
    ) as work:
        secret = get_secret(db=db, name=name)
        if keys_in_use(db, name):
            raise Conflict(
                f"secret `{name}` is used by a server's secretRef: change the server first"
            )
        db.delete(secret)
        work.audit()


__all__ = [
    "create_secret",
    "delete_secret",
    "get_secret",
    "keys_in_use",
    "list_secrets",
    "update_secret",
]
