"""mcpd's tables (SQLAlchemy 2). Schema changes go through Alembic (``mcpd/migrations``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class Resource:
    """Columns every resource kind has (SPEC §3)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    created_by: Mapped[str] = mapped_column(String(255), default="")
    version: Mapped[int] = mapped_column(Integer, default=1)


class User(Resource, Base):
    __tablename__ = "users"
    display_name: Mapped[str] = mapped_column(String(255), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class Group(Resource, Base):
    __tablename__ = "groups"
    members: Mapped[list[GroupMember]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="GroupMember.user_name"
    )


class GroupMember(Base):
    __tablename__ = "group_members"
    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_name: Mapped[str] = mapped_column(String(255), primary_key=True)


class Project(Resource, Base):
    __tablename__ = "projects"
    description: Mapped[str] = mapped_column(Text, default="")
    proxy_model: Mapped[str] = mapped_column(String(63), default="passthrough")
    proxy_options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    servers: Mapped[list[ProjectServer]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ProjectServer.server_name"
    )


class ProjectServer(Base):
    __tablename__ = "project_servers"
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    server_name: Mapped[str] = mapped_column(String(255), primary_key=True)


class Server(Resource, Base):
    __tablename__ = "servers"
    description: Mapped[str] = mapped_column(Text, default="")
    transport: Mapped[str] = mapped_column(String(16))  # stdio | http
    spec: Mapped[dict[str, Any]] = mapped_column(
        JSON, default=dict
    )  # command/args/env or url/headers
    health_check: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Secret(Resource, Base):
    __tablename__ = "secrets"
    keys: Mapped[list[str]] = mapped_column(JSON, default=list)  # names only, for display
    ciphertext: Mapped[str] = mapped_column(Text)  # Fernet token of the JSON data


class RbacDefinition(Resource, Base):
    __tablename__ = "rbac_definitions"
    subjects: Mapped[list[str]] = mapped_column(JSON, default=list)
    role_bindings: Mapped[list[str]] = mapped_column(JSON, default=list)
    # set when the definition holds an McpToken's bindings: deleted with the token
    token_id: Mapped[int | None] = mapped_column(
        ForeignKey("mcp_tokens.id", ondelete="CASCADE"), index=True
    )


class McpToken(Resource, Base):
    __tablename__ = "mcp_tokens"
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    project: Mapped[Project] = relationship(lazy="joined")
    description: Mapped[str] = mapped_column(Text, default="")
    token_sha: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(32))
    rbac_mode: Mapped[str] = mapped_column(String(16), default="empty")
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ServiceAccount(Resource, Base):
    """A machine identity (mcplocal, automation): the subject ``ServiceAccount:<name>``,
    bound by RBAC like a user; it signs in with its tokens, never with a password."""

    __tablename__ = "service_accounts"
    description: Mapped[str] = mapped_column(Text, default="")
    tokens: Mapped[list[ServiceAccountToken]] = relationship(
        cascade="all, delete-orphan",
        lazy="selectin",
        order_by="ServiceAccountToken.id",
        back_populates="account",
    )


class ServiceAccountToken(Base):
    """One credential of a service account (several during a rotation), stored as SHA-256."""

    __tablename__ = "service_account_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("service_accounts.id", ondelete="CASCADE"), index=True
    )
    account: Mapped[ServiceAccount] = relationship(lazy="joined", back_populates="tokens")
    token_sha: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(255), default="")
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginSession(Base):
    __tablename__ = "login_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_sha: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    user: Mapped[User] = relationship(lazy="joined")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OAuthClient(Base):
    """A client registered by RFC 7591 dynamic registration (public: PKCE, no secret)."""

    __tablename__ = "oauth_clients"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    client_name: Mapped[str] = mapped_column(String(255), default="")
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    # the rest of its registered metadata, as answered (client_uri, software_id, ...)
    client_metadata: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # set on its first grant: a client never used expires (MCPD_OAUTH_CLIENT_UNUSED_TTL)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OAuthGrant(Base):
    """A user's consent to a client: the McpToken it acts as (revoking one revokes both)."""

    __tablename__ = "oauth_grants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_id: Mapped[int] = mapped_column(
        ForeignKey("mcp_tokens.id", ondelete="CASCADE"), unique=True
    )
    token: Mapped[McpToken] = relationship(lazy="joined")
    client_id: Mapped[int] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )
    client: Mapped[OAuthClient] = relationship(lazy="joined")
    user_name: Mapped[str] = mapped_column(String(255), index=True)
    resource: Mapped[str] = mapped_column(String(2048))
    scope: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OAuthCode(Base):
    """An authorization code (hashed), good once, for a few minutes."""

    __tablename__ = "oauth_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code_sha: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[int] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    project: Mapped[str] = mapped_column(String(63))
    role_bindings: Mapped[list[str]] = mapped_column(JSON, default=list)
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    code_challenge: Mapped[str] = mapped_column(String(128))
    resource: Mapped[str] = mapped_column(String(2048))
    scope: Mapped[str] = mapped_column(String(255), default="")
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the grant its exchange made: a second use of the code revokes it (RFC 6749 4.1.2)
    grant_id: Mapped[int | None] = mapped_column(ForeignKey("oauth_grants.id", ondelete="SET NULL"))


class OAuthToken(Base):
    """An access or refresh token of a grant (hashed). A refresh token is used once:
    it is rotated, and a rotated one coming back revokes the whole grant."""

    __tablename__ = "oauth_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_sha: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # access | refresh
    grant_id: Mapped[int] = mapped_column(
        ForeignKey("oauth_grants.id", ondelete="CASCADE"), index=True
    )
    grant: Mapped[OAuthGrant] = relationship(lazy="joined")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_time", "time"),
        # a record sent again (a proxy's retry after a lost answer) is the same record
        Index("uq_audit_events_event_id", "event_id", unique=True),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # made where the decision was (a uuid): NULL only for rows older than migration 0005
    event_id: Mapped[str | None] = mapped_column(String(36))
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    subject: Mapped[str] = mapped_column(String(255), index=True)
    token_name: Mapped[str | None] = mapped_column(String(255))
    token_sha: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(255), default="")
    project: Mapped[str] = mapped_column(String(63), default="")
    outcome: Mapped[str] = mapped_column(String(16))  # allow | deny | error
    request_id: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # the policy revision the decision was made under (authz.revision); NULL before 0005
    policy_revision: Mapped[str | None] = mapped_column(String(16))


__all__ = [
    "AuditEvent",
    "Base",
    "Group",
    "GroupMember",
    "LoginSession",
    "McpToken",
    "OAuthClient",
    "OAuthCode",
    "OAuthGrant",
    "OAuthToken",
    "Project",
    "ProjectServer",
    "RbacDefinition",
    "Secret",
    "Server",
    "ServiceAccount",
    "ServiceAccountToken",
    "User",
]
