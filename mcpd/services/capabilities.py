"""Capabilities: the fields of a server or project that confer power, each a permission.

The API's services and restore call these with their unit of work, so one object is
checked the same way whichever path writes it:

* ``exec`` on ``servers/NAME`` - creating a stdio server, or changing what it runs
  (command, args, env): the child runs on mcpd's host.
* ``use`` on ``secrets/NAME`` - each secretRef of a server whose spec is new or changed
  (URL, command, args, refs). Refused exactly like a missing secret (422, same message),
  so a denied ``use`` tells nothing about whether the secret exists; audited as a deny.
* an http server's URL may not reach mcpd's own listen address, nor link-local / cloud
  metadata addresses (:mod:`mcpd.addresses`; checked again on every connection), unless
  the operator's allow-list (``MCPD_UPSTREAM_ALLOW``) names the address, network or host.
* ``attach`` on ``servers/NAME`` in the project - adding a server to a project; a server
  the caller may neither ``get`` nor ``attach`` there is answered like a nonexistent one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mcpd.addresses import blocked
from mcpd.errors import Invalid
from mcpd.models import Secret, Server
from mcpd.schemas.servers import secret_refs
from mcpd.services.work import Work


def missing_ref(ref: str) -> Invalid:
    """The 422 of a secretRef that does not resolve (and of one the caller may not use)."""
    name, key = ref.split("/", 1)
    return Invalid(f"secretRef `{ref}`: secret `{name}` has no key `{key}`")


def check_refs(db: Session, spec: dict[str, Any]) -> None:
    """Every secretRef of ``spec`` names a stored secret's key (else 422)."""
    for ref in sorted(secret_refs(spec)):
        name, key = ref.split("/", 1)
        secret = db.scalars(select(Secret).where(Secret.name == name)).first()
        if secret is None or key not in secret.keys:
            raise missing_ref(ref)


def check_server(
    work: Work, *, name: str, transport: str, old: dict[str, Any] | None, new: dict[str, Any]
) -> None:
    """The capabilities a new server (``old`` None) or a changed spec needs; nothing when
    the spec is unchanged (a description or health check change needs only update)."""
    if old is not None and old == new:
        return
    if transport == "stdio":
        work.require("servers", "exec", name)
    for ref in sorted(secret_refs(new)):
        secret = ref.split("/", 1)[0]
        if not work.allowed("secrets", "use", secret):
            work.refuse(missing_ref(ref), kind="secrets", action="use", name=secret)
    check_refs(work.db, new)
    if transport == "http":
        check_url(work, name, str(new.get("url", "")))


def check_url(work: Work, name: str, url: str) -> None:
    s = work.rt.settings
    why = blocked(url, host=s.host, port=s.port, allow=s.upstream_allow_list)
    if why is not None:
        work.refuse(
            Invalid(f"http.url `{url}`: {why}; an operator can allow it with MCPD_UPSTREAM_ALLOW"),
            kind="servers",
            action="update",
            name=name,
        )


def _visible(work: Work, server: str, project: str) -> bool:
    return work.allowed("servers", "get", server, project) or work.allowed(
        "servers", "attach", server, project
    )


def check_attach(
    work: Work, *, project: str, servers: list[str], before: Iterable[str]
) -> list[str]:
    """``servers`` sorted and deduplicated, each one existing and visible to the caller in
    ``project`` - ``get`` or ``attach`` there - (else 422 naming it, as for a nonexistent
    one) if it is not in the project already, and then attachable by the caller there
    (else 403)."""
    unique = sorted(set(servers))
    added = set(unique) - set(before)
    known = set(work.db.scalars(select(Server.name).where(Server.name.in_(unique))))
    hidden = [n for n in sorted(added & known) if not _visible(work, n, project)]
    unknown = [n for n in unique if n not in known or n in hidden]
    if unknown:
        exc = Invalid("servers: unknown server(s) " + ", ".join(f"`{n}`" for n in unknown))
        if hidden:
            work.refuse(exc, kind="servers", action="attach", name=hidden[0], project=project)
        raise exc
    for n in sorted(added):
        work.require("servers", "attach", n, project)
    return unique


__all__ = ["blocked", "check_attach", "check_refs", "check_server", "check_url", "missing_ref"]
