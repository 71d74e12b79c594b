"""/api/v1/mcptokens: project-scoped bearer tokens for MCP clients."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import Field
from sqlalchemy import select

from authz import RoleBinding
from authz.tokens import display_prefix, generate_mcp_token, token_sha256
from mcpd import audit
from mcpd.api.common import (
    After,
    CamelModel,
    DnsName,
    Limit,
    Meta,
    Page,
    get_or_404,
    meta,
    page_query,
    paginate,
    taken,
)
from mcpd.api.deps import DbDep, PrincipalDep, RequestIdDep, RuntimeDep
from mcpd.errors import Forbidden, Invalid
from mcpd.models import McpToken, Project, RbacDefinition, utcnow
from mcpd.runtime import aware, token_grant
from mcpd.services.policy import (
    PolicyChange,
    parse_bindings,
    require_covered,
    token_rbac_name,
)

router = APIRouter(prefix="/api/v1", tags=["mcptokens"])

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


class TokenIn(CamelModel):
    name: DnsName
    project: DnsName
    description: str = Field(default="", max_length=1000)
    ttl: str = Field(default="30d", max_length=64, description="30d, 12h, never or an ISO date")
    rbac: Literal["empty", "clone"] | None = Field(
        default=None,
        description="empty (default): no bindings; clone: the creator's in-project bindings",
    )
    bindings: list[str] = Field(default_factory=list, max_length=100)


class TokenOut(Meta):
    project: str
    description: str
    prefix: str
    rbac_mode: str
    bindings: list[str]
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="the raw token: shown once, never again")


def _bindings_of(db: DbDep, token: McpToken) -> list[str]:
    rbac = db.scalars(select(RbacDefinition).where(RbacDefinition.token_id == token.id)).first()
    return list(rbac.role_bindings) if rbac else []


def _out(db: DbDep, t: McpToken) -> TokenOut:
    return TokenOut(
        **meta(t),
        project=t.project.name,
        description=t.description,
        prefix=t.prefix,
        rbac_mode=t.rbac_mode,
        bindings=_bindings_of(db, t),
        expires_at=aware(t.expires_at),
        last_used_at=aware(t.last_used_at),
        revoked_at=aware(t.revoked_at),
    )


@router.get("/mcptokens", response_model=Page[TokenOut], response_model_by_alias=True)
def list_tokens(
    _: PrincipalDep,
    db: DbDep,
    project: Annotated[str | None, Query(max_length=63)] = None,
    limit: Limit = 100,
    after: After = None,
) -> Page[TokenOut]:
    stmt = select(McpToken)
    if project:
        stmt = stmt.join(Project).where(Project.name == project)
    rows, nxt = paginate(db, page_query(McpToken, limit, after, stmt), limit)
    return Page[TokenOut](items=[_out(db, t) for t in rows], next=nxt)


def _token_bindings(
    rt: RuntimeDep, p: PrincipalDep, body: TokenIn
) -> tuple[str, list[RoleBinding]]:
    if body.rbac == "clone" and body.bindings:
        raise Invalid("give either `rbac: clone` or `bindings`, not both")
    if body.rbac == "clone":
        return "clone", rt.authorizer.clone_bindings(p.subject, body.project)
    if not body.bindings:
        return "empty", []
    scoped = []
    for b in parse_bindings(rt.authorizer, body.bindings):
        if b.project not in ("*", body.project):
            raise Invalid(
                f"bindings: `{b}` is for project {b.project}, but the token acts only in "
                f"project {body.project}"
            )
        scoped.append(b.in_project(body.project))
    return "bindings", scoped


@router.post(
    "/mcptokens", status_code=201, response_model=TokenCreated, response_model_by_alias=True
)
def create_token(
    body: TokenIn, p: PrincipalDep, db: DbDep, rt: RuntimeDep, rid: RequestIdDep
) -> TokenCreated:
    """Create a token; its raw value is in this response only."""
    if p.user is None:
        raise Forbidden("a token cannot create tokens")
    project = db.scalars(select(Project).where(Project.name == body.project)).first()
    if project is None:
        raise Invalid(f"project: project `{body.project}` does not exist")
    taken(db, McpToken, body.name, "mcptoken")
    rbac_name = token_rbac_name(body.name)
    taken(db, RbacDefinition, rbac_name, "rbac definition")
    now = datetime.now(UTC)
    expires = parse_ttl(body.ttl, now)
    mode, bindings = _token_bindings(rt, p, body)
    require_covered(rt.authorizer, p.subject, p.display, bindings)
    raw = generate_mcp_token()
    sha = token_sha256(raw)
    token = McpToken(
        name=body.name,
        project=project,
        description=body.description,
        token_sha=sha,
        prefix=display_prefix(raw),
        rbac_mode=mode,
        expires_at=expires,
        created_by=p.user,
    )
    db.add(token)
    db.flush()
    change = PolicyChange()
    if bindings:
        db.add(
            RbacDefinition(
                name=rbac_name,
                subjects=[f"McpToken:{sha}"],
                role_bindings=[str(b) for b in bindings],
                token_id=token.id,
                created_by=p.user,
            )
        )
        change.replace(db, f"rbac/{rbac_name}", [b.to_rule(f"McpToken:{sha}") for b in bindings])
    audit.record(
        db,
        p,
        action="create",
        kind="mcptokens",
        name=body.name,
        project=body.project,
        request_id=rid,
        detail={"rbac": mode, "bindings": [str(b) for b in bindings], "tokenSha": sha},
    )
    db.commit()
    rt.authorizer.register_token(token_grant(token))
    change.publish(rt.authorizer)
    out = _out(db, token)
    return TokenCreated(**out.model_dump(), token=raw)


@router.get("/mcptokens/{name}", response_model=TokenOut, response_model_by_alias=True)
def get_token(name: str, _: PrincipalDep, db: DbDep) -> TokenOut:
    return _out(db, get_or_404(db, McpToken, name, "mcptoken"))


@router.post("/mcptokens/{name}/revoke", response_model=TokenOut, response_model_by_alias=True)
def revoke_token(
    name: str, p: PrincipalDep, db: DbDep, rt: RuntimeDep, rid: RequestIdDep
) -> TokenOut:
    """Revoke a token at once; its bindings are removed. Revoking twice is a no-op."""
    token = get_or_404(db, McpToken, name, "mcptoken")
    change = PolicyChange()
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        token.version += 1
        _drop_bindings(db, change, token)
        audit.record(
            db,
            p,
            action="revoke",
            kind="mcptokens",
            name=name,
            project=token.project.name,
            request_id=rid,
        )
        db.commit()
        rt.authorizer.register_token(token_grant(token))
        rt.session_cache.forget(token.token_sha)
        change.publish(rt.authorizer)
    return _out(db, token)


def _drop_bindings(db: DbDep, change: PolicyChange, token: McpToken) -> None:
    """Remove a token's RbacDefinition and its policy rows (in the caller's transaction)."""
    change.drop(db, f"rbac/{token_rbac_name(token.name)}")
    for rbac in db.scalars(select(RbacDefinition).where(RbacDefinition.token_id == token.id)):
        db.delete(rbac)


@router.delete("/mcptokens/{name}", status_code=204)
def delete_token(
    name: str, p: PrincipalDep, db: DbDep, rt: RuntimeDep, rid: RequestIdDep
) -> Response:
    token = get_or_404(db, McpToken, name, "mcptoken")
    sha, project = token.token_sha, token.project.name
    change = PolicyChange()
    _drop_bindings(db, change, token)
    db.delete(token)
    audit.record(
        db, p, action="delete", kind="mcptokens", name=name, project=project, request_id=rid
    )
    db.commit()
    change.publish(rt.authorizer)
    rt.authorizer.unregister_token(sha)
    rt.session_cache.forget(sha)
    return Response(status_code=204)
