"""Backup: the whole configuration as manifests (:mod:`mcpd.manifests`).

:func:`export` writes every user, group, service account, secret, server, project and
RbacDefinition as a manifest document. Secret values are left out unless asked for: a
Secret document then carries only its key names (``spec: {keys: [...]}``), and restoring
such a document never touches the stored values. McpTokens and the RbacDefinitions
holding a token's bindings are never exported (a token's raw value is unrecoverable), nor
are passwords or a service account's tokens: a user created by a restore has no password
until one is set, a service account no token until one is minted.

Taking such documents back in is :mod:`mcpd.services.restore`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mcpd import manifests
from mcpd.errors import ApiError
from mcpd.models import (
    Group,
    Project,
    RbacDefinition,
    Secret,
    Server,
    ServiceAccount,
)
from mcpd.models import User as UserRow
from mcpd.runtime import Runtime
from mcpd.services.work import Caller, unit_of_work


def export(*, db: Session, rt: Runtime, secrets: bool) -> list[dict[str, Any]]:
    """Every exportable object as a manifest document, in dependency order."""
    doc = manifests.document
    out = [
        doc("User", u.name, {"displayName": u.display_name, "disabled": u.disabled})
        for u in db.scalars(select(UserRow).order_by(UserRow.name))
    ]
    out += [
        doc("Group", g.name, {"members": [m.user_name for m in g.members]})
        for g in db.scalars(select(Group).order_by(Group.name))
    ]
    out += [
        doc("ServiceAccount", a.name, {"description": a.description})
        for a in db.scalars(select(ServiceAccount).order_by(ServiceAccount.name))
    ]
    for s in db.scalars(select(Secret).order_by(Secret.name)):
        if not secrets:
            out.append(doc("Secret", s.name, {"keys": sorted(s.keys)}))
            continue
        try:
            data = rt.secret_box.open(s.ciphertext)
        except ValueError as exc:
            raise ApiError(f"secret `{s.name}`: {exc}") from exc
        out.append(doc("Secret", s.name, {"data": dict(sorted(data.items()))}))
    for srv in db.scalars(select(Server).order_by(Server.name)):
        spec: dict[str, Any] = {
            "description": srv.description,
            "transport": srv.transport,
            srv.transport: srv.spec,
        }
        if srv.health_check is not None:
            spec["healthCheck"] = srv.health_check
        out.append(doc("Server", srv.name, spec))
    out += [
        doc(
            "Project",
            p.name,
            {
                "description": p.description,
                "servers": [s.server_name for s in p.servers],
                "proxyModel": p.proxy_model,
                "proxyOptions": p.proxy_options or {},
            },
        )
        for p in db.scalars(select(Project).order_by(Project.name))
    ]
    out += [
        doc("RbacDefinition", r.name, {"subjects": r.subjects, "roleBindings": r.role_bindings})
        for r in db.scalars(
            select(RbacDefinition)
            .where(RbacDefinition.token_id.is_(None))
            .order_by(RbacDefinition.name)
        )
    ]
    return out


def backup(*, db: Session, rt: Runtime, caller: Caller, secrets: bool) -> list[dict[str, Any]]:
    """:func:`export`, audited as the ``backup`` operation; with ``secrets`` it also needs
    the ``backup-secrets`` operation."""
    with unit_of_work(db=db, rt=rt, caller=caller, kind="*", action="backup") as work:
        if secrets:  # values in plain text: a separate operation, only admins' by default
            work.require("*", "backup-secrets")
        docs = export(db=db, rt=rt, secrets=secrets)
        work.audit(detail={"secrets": secrets, "documents": len(docs)})
    return docs


__all__ = ["backup", "export"]
