"""The unit of work: the one way a change to mcpd's configuration is made.

A service function opens one, does its writes inside it, and leaves::

    with unit_of_work(db=db, rt=rt, caller=caller, kind="servers", action="create") as work:
        db.add(server)                 # 2. write (policy rows through work.policy)
        work.audit(name=server.name)   # 3. audit, in the same transaction
    # 4. committed, then 5. published

In this order:

1. **authorize** - :meth:`Work.authorize` asks the shared enforcer whether the caller
   may do (kind, action) - unless the route guard (:func:`mcpd.api.deps.guard`, from
   :mod:`mcpd.api.route_table`) already asked exactly that before the handler ran
   (:attr:`Caller.guarded`). The creator ceiling (:meth:`Work.ceiling`) is checked by
   the service, before it writes what would grant something.
2. **write** - rows of ``db``, and policy rows through :attr:`Work.policy`
   (:class:`~mcpd.services.policy.PolicyChange`) in the same transaction.
3. **audit** - :meth:`Work.audit`, in the same transaction: it commits with the change.
4. **commit** - when the block ends without an exception; with ``dry_run`` it rolls
   back instead. An exception leaves without committing (the request's session rolls
   back when it closes): nothing is written, nothing published.
5. **publish** - the policy change goes to the enforcer (and, through its watch, to
   followers and other replicas), then the steps given to :meth:`Work.after_commit`
   (instances restart, caches forget). Table generations (:mod:`mcpd.changes`) move by
   themselves on commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn

from sqlalchemy.orm import Session

from authz import RoleBinding
from mcpd import audit
from mcpd.errors import ApiError, Forbidden
from mcpd.principal import Principal
from mcpd.runtime import Runtime
from mcpd.services.policy import PolicyChange, held_bindings, require_covered


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks for a change, under which request (for the audit), and what the route
    guard already decided for it: the (kind, action) of its route-table entry, or None
    when no guard ran (then every unit of work asks the enforcer itself)."""

    principal: Principal
    request_id: str = ""
    guarded: tuple[str, str] | None = None


@dataclass
class Work:
    """One unit of work in progress: see the module docstring."""

    db: Session
    rt: Runtime
    caller: Caller
    kind: str
    action: str
    name: str = ""
    project: str = ""
    policy: PolicyChange = field(default_factory=PolicyChange)
    _first: list[Callable[[], Any]] = field(default_factory=list)
    _then: list[Callable[[], Any]] = field(default_factory=list)

    @property
    def principal(self) -> Principal:
        return self.caller.principal

    def authorize(self, kind: str, action: str, name: str = "", project: str = "") -> None:
        """Step 1: refuse (403, with the deciding reason, ``missing`` naming the permission)
        unless the caller may do ``action`` on ``kind``[/``name``] in ``project``. The
        unit of work asks its own (kind, action); see :meth:`require` for capabilities."""
        if self.caller.guarded == (kind, action):
            return  # the route guard asked this very question before the handler ran
        self.require(kind, action, name, project)

    def require(self, kind: str, action: str, name: str = "", project: str = "") -> None:
        """:meth:`authorize`, always asking the enforcer: a capability a field confers
        (``exec``, ``use``, ``attach``, ``backup-secrets``), beyond the unit's own question."""
        p = self.principal
        decision = self.rt.authorizer.decide(p.subject, project, kind, name, action)
        if not decision.allowed:
            raise Forbidden(
                f"{p.display} may not {action} {kind}"
                + (f"/{name}" if name else "")
                + (f" in project {project}" if project else "")
                + f": {p.redact(decision.reason)}",
                missing=[{"verb": action, "kind": kind, "name": name, "project": project}],
            )

    def allowed(self, kind: str, action: str, name: str = "", project: str = "") -> bool:
        """Whether the caller may do ``action`` on ``kind``/``name`` (no refusal, no audit)."""
        p = self.principal
        return self.rt.authorizer.decide(p.subject, project, kind, name, action).allowed

    def refuse(
        self, exc: ApiError, *, kind: str, action: str, name: str = "", project: str = ""
    ) -> NoReturn:
        """Refuse with ``exc`` (e.g. the 422 a missing object gets, so a denied capability
        is no existence oracle), after auditing it as a deny: everything this unit wrote is
        rolled back first, only the audit event is committed."""
        self.db.rollback()
        self.audit(
            action=action,
            kind=kind,
            name=name,
            project=project,
            outcome="deny",
            detail={"reason": f"{self.principal.display} may not {action} {kind}/{name}"},
        )
        self.db.commit()
        if isinstance(exc, Forbidden):
            exc.audited = True
        raise exc

    def ceiling(self, bindings: Iterable[RoleBinding]) -> None:
        """The creator ceiling: refuse (403, listing what is missing) to grant more than
        the caller holds itself."""
        p = self.principal
        require_covered(self.rt.authorizer, p.subject, p.display, bindings)

    def ceiling_of(self, subject: str) -> None:
        """Becoming ``subject`` (or joining it) gains all it holds: the caller must hold it."""
        self.ceiling(held_bindings(self.rt.authorizer, subject))

    def audit(
        self,
        *,
        action: str | None = None,
        kind: str | None = None,
        name: str | None = None,
        project: str | None = None,
        outcome: str = "allow",
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Step 3: an audit event of this unit (or, given, of another action or object)."""
        audit.record(
            self.db,
            self.principal,
            action=self.action if action is None else action,
            kind=self.kind if kind is None else kind,
            name=self.name if name is None else name,
            project=self.project if project is None else project,
            outcome=outcome,
            request_id=self.caller.request_id,
            detail=detail,
            revision=self.rt.authorizer.revision,
        )

    def after_commit(self, step: Callable[[], Any], *, before_policy: bool = False) -> None:
        """Step 5: run ``step`` once committed, after the policy change is published - or,
        with ``before_policy``, before it (a token is known, or revoked, before its
        bindings change: it is never briefly valid with the old state)."""
        (self._first if before_policy else self._then).append(step)

    def _publish(self) -> None:
        for step in self._first:
            step()
        self.policy.publish(self.rt.authorizer)
        for step in self._then:
            step()


@contextmanager
def unit_of_work(
    *,
    db: Session,
    rt: Runtime,
    caller: Caller,
    kind: str,
    action: str,
    name: str = "",
    project: str = "",
    dry_run: bool = False,
    per_object: bool = False,
) -> Iterator[Work]:
    """Authorize, then the block writes and audits; commit and publish (see the module
    docstring). ``name`` and ``project`` are what the audit records by default.

    ``per_object`` is for a bulk path that needs no permission of its own (``apply``): the
    block must then :meth:`Work.authorize` every object it writes, as the API would."""
    work = Work(db, rt, caller, kind, action, name, project)
    if not per_object:
        work.authorize(kind, action, name, project)
    yield work
    if dry_run:
        db.rollback()
        return
    db.commit()
    work._publish()


__all__ = ["Caller", "Work", "unit_of_work"]
