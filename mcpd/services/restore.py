"""Restore (and ``apply``): manifest documents imported in one transaction, all or nothing.

Each object that exists and matches is ``unchanged``; one that differs is ``updated`` (its
version goes up) to exactly what the manifest says; a missing one is ``created``. Objects
absent from the manifest are left alone: a restore never deletes. It runs as one unit of
work (:mod:`mcpd.services.work`) and applies the checks of the API's create and update
services (:mod:`mcpd.services`) under the caller: each created or updated object needs
the API's create or update permission on it, and the capabilities of
:mod:`mcpd.services.capabilities` (``exec``, ``use``, the URL check, ``attach``) and the
creator ceiling apply as they do through the API - ``action:restore`` is a bulk path,
never a bypass. It writes the policy rows with the objects, audits each change and the
restore itself, and publishes the policy change after commit. A dry run does all of that
and rolls back. The documents are those :mod:`mcpd.services.backup` exports (a Secret
may carry its key names only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from mcpd import manifests
from mcpd.errors import ApiError, Forbidden, Invalid
from mcpd.manifests import Document, SecretKeys
from mcpd.models import (
    Group,
    GroupMember,
    Project,
    ProjectServer,
    RbacDefinition,
    Secret,
    Server,
    ServiceAccount,
)
from mcpd.models import User as UserRow
from mcpd.runtime import Runtime
from mcpd.schemas.backup import Outcome
from mcpd.schemas.groups import GroupIn
from mcpd.schemas.projects import ProjectIn, dump_options
from mcpd.schemas.rbac import RbacIn
from mcpd.schemas.secrets import SecretIn
from mcpd.schemas.servers import ServerIn, dump_health, dump_spec
from mcpd.schemas.serviceaccounts import ServiceAccountIn
from mcpd.schemas.users import UserIn
from mcpd.services.capabilities import check_attach, check_refs, check_server
from mcpd.services.groups import check_members, member_rules
from mcpd.services.policy import parse_bindings, parse_subjects
from mcpd.services.rbac import rules_of, validated
from mcpd.services.users import user_changed
from mcpd.services.work import Caller, Work, unit_of_work


@dataclass(frozen=True, slots=True)
class Done:
    """What a restore did (or, in a dry run, would do) to one object."""

    kind: str
    name: str
    outcome: Outcome
    version: int
    fields: list[str]  # what an update changed


@dataclass
class _Restore:
    """One restore's unit of work, and what it has done so far."""

    work: Work
    done: list[tuple[Document, Outcome, Any, list[str]]] = field(default_factory=list)

    @property
    def db(self) -> Session:
        return self.work.db

    @property
    def rt(self) -> Runtime:
        return self.work.rt

    @property
    def by(self) -> str:
        return self.work.principal.display

    def get(self, model: Any, name: str) -> Any:
        return self.db.scalars(select(model).where(model.name == name)).first()

    def authorize(self, doc: Document, action: str, project: str = "") -> None:
        """The API's create or update permission on ``doc``'s object, under the caller."""
        self.work.authorize(manifests.KINDS[doc.kind].collection, action, doc.name, project)

    def record(
        self,
        doc: Document,
        obj: Any,
        changed: list[str] | None,
        detail: dict[str, Any] | None = None,
        project: str = "",
    ) -> None:
        """``changed`` is None for a new object, else the fields that differ (may be none)."""
        if changed == []:
            # asked as an update: "unchanged" must not tell a caller who may not change the
            # object what it holds (a guessed secret value, a server's command)
            self.authorize(doc, "update", project)
            self.done.append((doc, "unchanged", obj, []))
            return
        outcome: Outcome = "created" if changed is None else "updated"
        if changed is not None:
            obj.version += 1
        self.done.append((doc, outcome, obj, changed or []))
        kind = manifests.KINDS[doc.kind].collection
        action = "create" if changed is None else "update"
        # the API's own question for this object, under the caller (the route guard
        # decided (*, restore), not this): a 403 rolls the whole restore back
        self.authorize(doc, action, project)
        self.work.audit(
            action=action,
            kind=kind,
            name=doc.name,
            project=project,
            detail={"restore": True, **({"fields": changed} if changed else {}), **(detail or {})},
        )


def _diff(pairs: dict[str, tuple[Any, Any]]) -> list[str]:
    return [f for f, (have, want) in pairs.items() if have != want]


def _user(r: _Restore, doc: Document, body: UserIn) -> None:
    user = r.get(UserRow, body.name)
    if user is None:
        # bindings that still name it go to whoever is created
        r.work.ceiling_of(f"User:{body.name}")
        user = UserRow(
            name=body.name,
            display_name=body.display_name,
            disabled=body.disabled,
            created_by=r.by,
        )
        r.db.add(user)
        return r.record(doc, user, None)
    changed = _diff(
        {
            "displayName": (user.display_name, body.display_name),
            "disabled": (user.disabled, body.disabled),
        }
    )
    was_disabled = user.disabled
    user.display_name, user.disabled = body.display_name, body.disabled
    r.record(doc, user, changed)
    if changed:
        user_changed(r.work, user, was_disabled=was_disabled, password=False)


def _group(r: _Restore, doc: Document, body: GroupIn) -> None:
    members = check_members(r.db, body.members)
    group = r.get(Group, body.name)
    before = [m.user_name for m in group.members] if group is not None else []
    if set(members) - set(before):  # joining a group grants what it holds
        r.work.ceiling_of(f"Group:{body.name}")
    if group is not None and before == members:
        return r.record(doc, group, [])
    if group is None:
        group = Group(name=body.name, created_by=r.by)
        r.db.add(group)
        changed, detail = None, {"members": members}
    else:
        added, removed = set(members) - set(before), set(before) - set(members)
        changed, detail = ["members"], {"added": sorted(added), "removed": sorted(removed)}
    group.members = [GroupMember(user_name=m) for m in members]
    r.work.policy.replace(r.db, f"group/{body.name}", member_rules(body.name, members))
    r.record(doc, group, changed, detail)


def _service_account(r: _Restore, doc: Document, body: ServiceAccountIn) -> None:
    account = r.get(ServiceAccount, body.name)
    if account is None:
        # bindings that still name it go to whoever mints its first token
        r.work.ceiling_of(f"ServiceAccount:{body.name}")
        account = ServiceAccount(name=body.name, description=body.description, created_by=r.by)
        r.db.add(account)
        return r.record(doc, account, None)
    changed = _diff({"description": (account.description, body.description)})
    account.description = body.description
    r.record(doc, account, changed)


def _secret(r: _Restore, doc: Document, body: SecretIn | SecretKeys) -> None:
    secret = r.get(Secret, body.name)
    if isinstance(body, SecretKeys):  # key names only: never changes a stored value
        if secret is None:
            raise Invalid(
                "the manifest has no values for this secret (a backup made without "
                "`?secrets=true`) and it does not exist here: restore from a backup with "
                "secrets, or create the secret first"
            )
        if sorted(secret.keys) != body.keys:
            raise Invalid(
                f"the manifest lists keys {', '.join(body.keys) or '(none)'} without values, "
                f"but the stored secret has {', '.join(sorted(secret.keys)) or '(none)'}: "
                "restore from a backup with secrets, or update the secret first"
            )
        return r.record(doc, secret, [])
    keys = sorted(body.data)
    if secret is None:
        secret = Secret(
            name=body.name,
            keys=keys,
            ciphertext=r.rt.secret_box.seal(body.data),
            created_by=r.by,
        )
        r.db.add(secret)
        r.record(doc, secret, None, {"keys": keys})
        r.work.after_commit(r.rt.server_changed)  # as the API: instances using it restart
        return
    try:
        same = r.rt.secret_box.open(secret.ciphertext) == body.data
    except ValueError:  # sealed with another key: the manifest's values replace it
        same = False
    if same:
        return r.record(doc, secret, [])
    secret.keys, secret.ciphertext = keys, r.rt.secret_box.seal(body.data)
    r.record(doc, secret, ["data"], {"keys": keys})
    r.work.after_commit(r.rt.server_changed)  # instances using it restart with the values


def _server(r: _Restore, doc: Document, body: ServerIn) -> None:
    spec = dump_spec(body.stdio or body.http)  # type: ignore[arg-type]
    health = dump_health(body.health_check)
    server = r.get(Server, body.name)
    if server is None:
        r.authorize(doc, "create")
        check_server(r.work, name=body.name, transport=body.transport, old=None, new=spec)
        server = Server(
            name=body.name,
            description=body.description,
            transport=body.transport,
            spec=spec,
            health_check=health,
            created_by=r.by,
        )
        r.db.add(server)
        return r.record(doc, server, None)
    if server.transport != body.transport:
        r.authorize(doc, "update")  # a refusal tells nothing of the server's transport
        raise Invalid(
            f"server `{body.name}` uses {server.transport} here and {body.transport} in the "
            "manifest: a transport cannot change; delete the server first"
        )
    changed = _diff(
        {
            "description": (server.description, body.description),
            body.transport: (server.spec, spec),
            "healthCheck": (server.health_check, health),
        }
    )
    if changed:
        r.authorize(doc, "update")
    check_server(r.work, name=body.name, transport=body.transport, old=server.spec, new=spec)
    server.description, server.spec, server.health_check = body.description, spec, health
    r.record(doc, server, changed)
    if changed:
        r.work.after_commit(lambda: r.rt.server_changed(body.name))  # its instance restarts


def _project(r: _Restore, doc: Document, body: ProjectIn) -> None:
    project = r.get(Project, body.name)
    before = [s.server_name for s in project.servers] if project is not None else []
    if sorted(set(body.servers)) != sorted(before):
        r.authorize(doc, "create" if project is None else "update", body.name)
    servers = check_attach(r.work, project=body.name, servers=body.servers, before=before)
    if project is None:
        project = Project(
            name=body.name,
            description=body.description,
            proxy_model=body.proxy_model,
            proxy_options=dump_options(body.proxy_options),
            servers=[ProjectServer(server_name=s) for s in servers],
            created_by=r.by,
        )
        r.db.add(project)
        return r.record(doc, project, None, {"servers": servers}, project=body.name)
    changed = _diff(
        {
            "description": (project.description, body.description),
            "servers": ([s.server_name for s in project.servers], servers),
            "proxyModel": (project.proxy_model, body.proxy_model),
            "proxyOptions": (
                project.proxy_options or {},
                dump_options(body.proxy_options),
            ),
        }
    )
    project.description, project.proxy_model = body.description, body.proxy_model
    project.proxy_options = dump_options(body.proxy_options)
    if "servers" in changed:
        project.servers = [ProjectServer(server_name=s) for s in servers]
    r.record(doc, project, changed, project=body.name)
    if changed:
        r.work.after_commit(lambda: r.rt.project_servers.forget(body.name))


def _rbac(r: _Restore, doc: Document, body: RbacIn) -> None:
    rbac = r.get(RbacDefinition, body.name)
    if rbac is not None and rbac.token_id is not None:
        raise Forbidden(
            f"rbac definition `{body.name}` belongs to an McpToken here: revoke or delete the "
            "token, or rename the definition in the manifest"
        )
    subjects = parse_subjects(body.subjects)
    bindings = [str(b) for b in parse_bindings(r.rt.authorizer, body.role_bindings)]
    if rbac is not None and rbac.subjects == subjects and rbac.role_bindings == bindings:
        return r.record(doc, rbac, [])
    subjects, parsed = validated(r.work, body.subjects, body.role_bindings)  # the ceiling
    detail = {"subjects": subjects, "roleBindings": bindings}
    r.work.policy.replace(r.db, f"rbac/{body.name}", rules_of(subjects, parsed))
    if rbac is None:
        rbac = RbacDefinition(
            name=body.name, subjects=subjects, role_bindings=bindings, created_by=r.by
        )
        r.db.add(rbac)
        return r.record(doc, rbac, None, detail)
    changed = _diff(
        {"subjects": (rbac.subjects, subjects), "roleBindings": (rbac.role_bindings, bindings)}
    )
    rbac.subjects, rbac.role_bindings = subjects, bindings
    r.record(doc, rbac, changed, detail)


def _import(r: _Restore, doc: Document) -> None:
    body = doc.body
    if isinstance(body, UserIn):
        _user(r, doc, body)
    elif isinstance(body, GroupIn):
        _group(r, doc, body)
    elif isinstance(body, ServiceAccountIn):
        _service_account(r, doc, body)
    elif isinstance(body, SecretIn | SecretKeys):
        _secret(r, doc, body)
    elif isinstance(body, ServerIn):
        _server(r, doc, body)
    elif isinstance(body, ProjectIn):
        _project(r, doc, body)
    elif isinstance(body, RbacIn):
        _rbac(r, doc, body)
    else:  # pragma: no cover - manifests.KINDS and this list are kept together
        raise AssertionError(f"no importer for {type(body).__name__}")


def _check_secret_refs(db: Session) -> None:
    """After secrets changed: every server's secretRefs must still resolve."""
    for server in db.scalars(select(Server).order_by(Server.name)):
        try:
            check_refs(db, server.spec)
        except Invalid as exc:
            raise Invalid(f"server `{server.name}` would break: {exc.detail}") from None


def restore(
    *,
    db: Session,
    rt: Runtime,
    caller: Caller,
    docs: list[Document],
    dry_run: bool,
    action: Literal["restore", "apply"] = "restore",
) -> list[Done]:
    """Import ``docs`` in one unit of work: commit and publish, or roll back for a dry run.

    Both ``restore`` (the operation) and ``apply`` (``mcpctl apply``: no permission of its
    own) ask, for every document, the permissions the API would ask for that object
    (:meth:`_Restore.authorize`, the capabilities), under the caller. An error names the
    document it arose in, and leaves the database as it was; a refusal is audited as a deny."""
    with unit_of_work(
        db=db,
        rt=rt,
        caller=caller,
        kind="*",
        action=action,
        dry_run=dry_run,
        per_object=action == "apply",
    ) as work:
        r = _Restore(work)
        for doc in docs:
            try:
                _import(r, doc)
            except ApiError as exc:
                exc.detail = f"{doc.where}: {exc.detail}"
                exc.extra = {"document": doc.index, "kind": doc.kind, "name": doc.name, **exc.extra}
                if isinstance(exc, Forbidden) and not exc.audited:
                    db.rollback()
                    work.audit(outcome="deny", detail={"reason": exc.detail, "dryRun": dry_run})
                    db.commit()
                    exc.audited = True
                raise
        if any(doc.kind == "Secret" and outcome == "updated" for doc, outcome, _, _ in r.done):
            _check_secret_refs(db)
        db.flush()  # new objects get their version
        done = [Done(d.kind, d.name, o, obj.version, f) for d, o, obj, f in r.done]
        counts = {o: sum(1 for d in done if d.outcome == o) for o in ("created", "updated")}
        work.audit(detail={"documents": len(done), **counts})  # a dry run rolls it back
    return done


__all__ = ["Done", "restore"]
