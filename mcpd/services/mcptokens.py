"""McpTokens: create (within the creator's ceiling), revoke, delete, and reads."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from authz import RoleBinding, Rule
from authz.tokens import display_prefix, generate_mcp_token, token_sha256
from mcpd.errors import Conflict, Forbidden, Invalid
from mcpd.models import McpToken, Project, RbacDefinition, utcnow
from mcpd.runtime import Runtime, token_grant
from mcpd.schemas.mcptokens import TokenIn
from mcpd.schemas.rbac import token_rbac_name
from mcpd.services.common import get_or_404, page
from mcpd.services.policy import parse_bindings
from mcpd.services.work import Caller, Work, unit_of_work

_TTL = re.compile(r"^(\d{1,6})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# the latest expiry: a day short of year 9999 ending, so no time zone takes it past what
# Python and the database drivers can represent (an expiry there is as good as `never`)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def parse_ttl(text: str, now: datetime) -> datetime | None:
    """``30d``/``12h``/``90m``/``2w``, ``never``, or an ISO date or date-time (future)."""
    if text == "never":
        return None
    m = _TTL.match(text)
    if m:
        delta = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
        if not delta:
            raise Invalid("ttl: must be longer than zero")
        if delta >= _LATEST - now:
            raise Invalid(f"ttl: `{text}` is too far in the future; use `never`")
        return now + delta
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise Invalid(
            f"ttl: `{text}` is not a duration (30d, 12h, 90m, 2w), `never`, or an ISO date"
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when.replace(tzinfo=None) >= _LATEST.replace(tzinfo=None):
        raise Invalid(f"ttl: `{text}` is too far in the future; use `never`")
    if when <= now:
        raise Invalid(f"ttl: `{text}` is in the past")
    return when


def bindings_of(db: Session, token: McpToken) -> list[str]:
    """The role bindings a token holds (those of its own RbacDefinition)."""
    rbac = db.scalars(select(RbacDefinition).where(RbacDefinition.token_id == token.id)).first()
    return list(rbac.role_bindings) if rbac else []


def list_tokens(
    *, db: Session, project: str | None, limit: int, after: str | None
) -> tuple[list[McpToken], str | None]:
    stmt = select(McpToken)
    if project:
        stmt = stmt.join(Project).where(Project.name == project)
    return page(db, McpToken, limit, after, stmt)


def get_token(*, db: Session, name: str) -> McpToken:
    token: McpToken = get_or_404(db, McpToken, name, "mcptoken")
    return token


def name_free(db: Session, name: str) -> None:
    """409 if ``name`` is in use. Token names are one namespace over all projects (they
    name ``/mcptokens/<name>``), so the answer is the same whether the token in the way is
    one the caller may see or one in a project it cannot: it says that the name is taken,
    never where, by whom, or that a token the caller cannot see exists there."""
    used = db.scalars(select(McpToken.id).where(McpToken.name == name)).first() is not None
    rbac = token_rbac_name(name)
    if used or db.scalars(select(RbacDefinition.id).where(RbacDefinition.name == rbac)).first():
        raise Conflict(
            f"mcptoken name `{name}` is not available (token names are unique across all "
            "projects); choose another"
        )


def _requested_bindings(work: Work, spec: TokenIn) -> tuple[str, list[RoleBinding]]:
    if spec.rbac == "clone" and spec.bindings:
        raise Invalid("give either `rbac: clone` or `bindings`, not both")
    if spec.rbac == "clone":
        return "clone", work.rt.authorizer.clone_bindings(work.principal.subject, spec.project)
    if not spec.bindings:
        return "empty", []
    scoped = []
    for b in parse_bindings(work.rt.authorizer, spec.bindings):
        if b.project not in ("*", spec.project):
            raise Invalid(
                f"bindings: `{b}` is for project {b.project}, but the token acts only in "
                f"project {spec.project}"
            )
        scoped.append(b.in_project(spec.project))
    return "bindings", scoped


def create_token(
    *, db: Session, rt: Runtime, caller: Caller, spec: TokenIn
) -> tuple[McpToken, str]:
    """Create a token; returns it with its raw value (which is stored nowhere)."""
    with unit_of_work(
        db=db,
        rt=rt,
        caller=caller,
        kind="mcptokens",
        action="create",
        name=spec.name,
        project=spec.project,
    ) as work:
        user = caller.principal.user
        if user is None:
            raise Forbidden(
                f"{caller.principal.display} cannot create tokens: a token belongs to a user, "
                "whose permissions are its ceiling"
            )
        project = db.scalars(select(Project).where(Project.name == spec.project)).first()
        if project is None:
            raise Invalid(f"project: project `{spec.project}` does not exist")
        name_free(db, spec.name)
        expires = parse_ttl(spec.ttl, datetime.now(UTC))
        mode, bindings = _requested_bindings(work, spec)
        token, raw = issue_token(
            work,
            user=user,
            project=project,
            name=spec.name,
            description=spec.description,
            mode=mode,
            bindings=bindings,
            expires=expires,
        )
        sha = token.token_sha
        work.audit(detail={"rbac": mode, "bindings": [str(b) for b in bindings], "tokenSha": sha})
    return token, raw


def issue_token(
    work: Work,
    *,
    user: str,
    project: Project,
    name: str,
    description: str,
    mode: str,
    bindings: list[RoleBinding],
    expires: datetime | None,
) -> tuple[McpToken, str]:
    """Write a new token of ``user`` (within its ceiling) and its bindings in ``work``;
    returns it with its raw value. Also the McpToken an OAuth grant acts as."""
    db = work.db
    work.ceiling(bindings)
    raw = generate_mcp_token()
    sha = token_sha256(raw)
    token = McpToken(
        name=name,
        project=project,
        description=description,
        token_sha=sha,
        prefix=display_prefix(raw),
        rbac_mode=mode,
        expires_at=expires,
        created_by=user,
    )
    db.add(token)
    db.flush()
    if bindings:
        rbac_name = token_rbac_name(name)
        db.add(
            RbacDefinition(
                name=rbac_name,
                subjects=[f"McpToken:{sha}"],
                role_bindings=[str(b) for b in bindings],
                token_id=token.id,
                created_by=user,
            )
        )
        rules: list[Rule] = [b.to_rule(f"McpToken:{sha}") for b in bindings]
        work.policy.replace(db, f"rbac/{rbac_name}", rules)
    rt = work.rt
    # the token is known before its bindings arrive
    work.after_commit(lambda: rt.authorizer.register_token(token_grant(token)), before_policy=True)
    return token, raw


def _drop_bindings(work: Work, token: McpToken) -> None:
    """Remove a token's RbacDefinition and its policy rows (in the unit's transaction)."""
    work.policy.drop(work.db, f"rbac/{token_rbac_name(token.name)}")
    for rbac in work.db.scalars(select(RbacDefinition).where(RbacDefinition.token_id == token.id)):
        work.db.delete(rbac)


def revoke_token(*, db: Session, rt: Runtime, caller: Caller, name: str) -> McpToken:
    """Revoke a token at once; its bindings are removed. Revoking twice is a no-op."""
    token = get_token(db=db, name=name)
    if token.revoked_at is not None:
        return token
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="mcptokens", action="update", name=name
    ) as work:
        mark_revoked(work, token)
        work.audit(action="revoke", project=token.project.name)
    return token


def mark_revoked(work: Work, token: McpToken) -> None:
    """Revoke ``token`` in ``work`` (the caller audits): its bindings go, and it is refused
    from the first moment after the commit, before its policy rows go."""
    token.revoked_at = utcnow()
    token.version += 1
    _drop_bindings(work, token)
    rt = work.rt

    def revoked() -> None:
        rt.authorizer.register_token(token_grant(token))
        rt.session_cache.forget(token.token_sha)

    work.after_commit(revoked, before_policy=True)


def delete_token(*, db: Session, rt: Runtime, caller: Caller, name: str) -> None:
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="mcptokens", action="delete", name=name
    ) as work:
        token = get_token(db=db, name=name)
        sha, project = token.token_sha, token.project.name
        _drop_bindings(work, token)
        db.delete(token)
        work.audit(project=project)

        def gone() -> None:
            rt.authorizer.unregister_token(sha)
            rt.session_cache.forget(sha)

        work.after_commit(gone)


__all__ = [
    "bindings_of",
    "create_token",
    "delete_token",
    "get_token",
    "issue_token",
    "list_tokens",
    "mark_revoked",
    "name_free",
    "parse_ttl",
    "revoke_token",
]
