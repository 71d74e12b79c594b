"""/api/v1/auth: login, logout, me, can-i, the access list and who-can; token introspection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from authz.tokens import generate_session_token, token_kind, token_sha256
from mcpd import audit
from mcpd.api.deps import DbDep, PrincipalDep, RequestIdDep, RuntimeDep
from mcpd.errors import Forbidden, TooManyRequests, Unauthorized
from mcpd.models import LoginSession, McpToken, User
from mcpd.principal import Principal
from mcpd.runtime import Runtime, aware
from mcpd.schemas.auth import CanIIn, CanIOut, IntrospectOut, LoginIn, LoginOut, MeOut
from mcpd.security import verify_password
from mcpd.services import access

router = APIRouter(prefix="/api/v1", tags=["auth"])


def password_login(
    db: Session, rt: Runtime, username: str, password: str, address: str, rid: str, via: str
) -> tuple[str, datetime, User]:
    """Check a user name and password (rate-limited per user and address, audited) and
    open a login session: its raw bearer, expiry and user. ``via``: api or oauth."""
    key = f"{username}|{address}"
    wait = rt.login_limiter.blocked(key)
    if wait:
        err = TooManyRequests(f"too many failed logins; try again in {int(wait) + 1} s")
        err.headers = {"Retry-After": str(int(wait) + 1)}
        raise err
    user = db.scalars(select(User).where(User.name == username)).first()
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or user.disabled:
        rt.login_limiter.hit(key)
        audit.record(
            db,
            Principal(f"User:{username}", user=username),
            action="login",
            kind="users",
            name=username,
            outcome="deny",
            request_id=rid,
            detail={"reason": "bad credentials", "address": address, "via": via},
        )
        db.commit()
        raise Unauthorized("wrong user name or password")
    rt.login_limiter.reset(key)
    raw = generate_session_token()
    expires = datetime.now(UTC) + timedelta(seconds=rt.settings.session_ttl_seconds)
    db.add(LoginSession(token_sha=token_sha256(raw), user_id=user.id, expires_at=expires))
    audit.record(
        db,
        Principal(f"User:{user.name}", user=user.name),
        action="login",
        kind="users",
        name=user.name,
        request_id=rid,
        detail={"address": address, "via": via},
    )
    db.commit()
    return raw, expires, user


@router.post("/auth/login", response_model=LoginOut, response_model_by_alias=True)
def login(
    body: LoginIn, request: Request, db: DbDep, rt: RuntimeDep, rid: RequestIdDep
) -> LoginOut:
    """Exchange a user name and password for a session bearer token."""
    address = request.client.host if request.client else "-"
    raw, expires, user = password_login(db, rt, body.username, body.password, address, rid, "api")
    return LoginOut(token=raw, expires_at=expires, user=user.name)


@router.post("/auth/logout", status_code=204)
def logout(principal: PrincipalDep, db: DbDep, rt: RuntimeDep) -> Response:
    """End the session whose bearer this is."""
    if principal.session_sha is None:
        raise Forbidden("only a login session can log out; revoke a token instead")
    db.execute(delete(LoginSession).where(LoginSession.token_sha == principal.session_sha))
    db.commit()
    rt.session_cache.forget(principal.session_sha)
    return Response(status_code=204)


@router.get("/auth/me", response_model=MeOut, response_model_by_alias=True)
def me(principal: PrincipalDep) -> MeOut:
    token = principal.token_sha is not None  # named, as everywhere, never by its hash
    return MeOut(
        subject=f"McpToken:{principal.token_name}" if token else principal.subject,
        user=principal.user,
        token_name=principal.token_name,
        project=principal.token_project,
        service_account=principal.service_account,
    )


@router.post("/auth/can-i", response_model=CanIOut, response_model_by_alias=True)
def can_i(body: CanIIn, principal: PrincipalDep, rt: RuntimeDep) -> CanIOut:
    """May I (or, with the `impersonate` operation, SUBJECT) do ACTION on KIND[/NAME]?"""
    subject = principal.subject
    if body.subject and body.subject != principal.subject:
        may = rt.authorizer.decide(principal.subject, body.project, "*", "*", "impersonate")
        if not may.allowed:
            raise Forbidden(
                "asking for another subject needs the impersonate operation: "
                + principal.redact(may.reason)
            )
        subject = body.subject
    d = rt.authorizer.decide(subject, body.project, body.kind, body.name, body.action)
    return CanIOut(allowed=d.allowed, reason=principal.redact(d.reason))


_Name = Annotated[str, Query(max_length=255)]
_Short = Annotated[str, Query(max_length=63)]


@router.get("/auth/can-i/list")
def can_i_list(
    principal: PrincipalDep,
    rt: RuntimeDep,
    subject: Annotated[str | None, Query(max_length=80, description="another subject")] = None,
    project: Annotated[str | None, Query(max_length=63, description="only this project")] = None,
) -> dict[str, Any]:
    """My access list (or, with `impersonate`, SUBJECT's): an `AccessList` document."""
    return access.access_list(rt.authorizer, principal, subject, project)


@router.get("/auth/who-can")
def who_can(
    principal: PrincipalDep,
    rt: RuntimeDep,
    verb: _Short,
    kind: _Short,
    name: _Name = "",
    project: _Short = "",
) -> dict[str, Any]:
    """Every subject allowed VERB on KIND[/NAME] in PROJECT (needs `who-can` on it):
    a `WhoCan` document."""
    return access.who_can(rt.authorizer, principal, verb, kind, name, project)


@router.get("/mcptokens/introspect", response_model=IntrospectOut, response_model_by_alias=True)
def introspect(request: Request, db: DbDep) -> IntrospectOut:
    """Say whether the bearer McpToken is valid, revoked, expired or unknown."""
    header = request.headers.get("authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or token_kind(raw.strip()) != "mcptoken":
        raise Unauthorized("send the McpToken to introspect as `Authorization: Bearer <token>`")
    token = db.scalars(
        select(McpToken).where(McpToken.token_sha == token_sha256(raw.strip()))
    ).first()
    if token is None:
        return IntrospectOut(active=False, status="unknown")
    expires = aware(token.expires_at)
    if token.revoked_at is not None:
        status = "revoked"
    elif expires is not None and expires <= datetime.now(UTC):
        status = "expired"
    else:
        status = "valid"
    return IntrospectOut(
        active=status == "valid",
        status=status,
        name=token.name,
        project=token.project.name,
        expires_at=expires,
    )
