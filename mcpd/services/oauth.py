"""mcpd as an OAuth 2.1 authorization server for MCP clients (issue 19): the authorization
request and the user's consent.

The flow: an authorization request is checked (:func:`check_request`), the user consents
for one project (:func:`consent`: the ``oauth-consent`` operation there, and bindings at
most the user's own - the creator ceiling), the code is exchanged once with its PKCE
verifier (:func:`mcpd.services.oauth_tokens.exchange_code`). What the exchange makes is an
**McpToken** of the user in that project (the grant), so revocation, audit, ``get
mcptokens``, the continuous ceiling and the policy stream apply to it unchanged. Its access
tokens act as that McpToken, only at the resource (RFC 8707) they were issued for; its
refresh tokens rotate, and one coming back after rotation revokes the grant (every token of
it).

The flow's modules: this one (the resources tokens are for, the authorization request,
consent); :mod:`mcpd.services.oauth_clients` (registration, redirect URIs);
:mod:`mcpd.services.oauth_tokens` (the token and revocation endpoints: code exchange with
PKCE, refresh rotation); :mod:`mcpd.services.oauth_grants` (a grant once made: what its
access tokens act as, introspection, revoking it, a user's own grants).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from authlib.oauth2.rfc7636.challenge import CODE_CHALLENGE_PATTERN
from sqlalchemy import select
from sqlalchemy.orm import Session

from authz import RoleBinding
from authz.tokens import generate_oauth_token, token_sha256
from mcpd.errors import BadRequest, Forbidden, NotFound
from mcpd.models import OAuthClient, OAuthCode, Project, User, utcnow
from mcpd.runtime import Runtime
from mcpd.services.oauth_clients import find_client, redirect_matches
from mcpd.services.policy import parse_bindings
from mcpd.services.work import Caller, Work, unit_of_work
from mcpd.settings import Settings

SCOPES = ("mcp",)
CONSENT = "oauth-consent"  # the operation (policies/operations.csv)
REGISTER = "oauth-register"
ANONYMOUS = "Group:system:unauthenticated"
_SERVER_ENDPOINT = re.compile(r"^/api/v1/servers/[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?/mcp$")


class PageError(Exception):
    """The authorization request cannot be answered by a redirect (unknown client, a
    redirect URI it did not register): the page shows this instead (RFC 6749 4.1.2.1)."""


class RedirectError(Exception):
    """An error the client hears at its (checked) redirect URI: ``error``, ``state``."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class AuthRequest:
    """A checked authorization request (the fields the pages carry along)."""

    client: OAuthClient
    redirect_uri: str
    state: str
    code_challenge: str
    resource: str
    scope: str

    def fields(self) -> dict[str, str]:
        return {
            "response_type": "code",
            "client_id": self.client.client_id,
            "redirect_uri": self.redirect_uri,
            "state": self.state,
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
            "resource": self.resource,
            "scope": self.scope,
        }


def resource_allowed(settings: Settings, resource: str) -> bool:
    """A resource mcpd issues tokens for: a configured mcplocal, or an MCP endpoint of its own."""
    if resource in settings.oauth_resource_list():
        return True
    issuer = settings.issuer
    return resource.startswith(issuer + "/") and bool(
        _SERVER_ENDPOINT.match(resource[len(issuer) :])
    )


def resource_of_request(settings: Settings, path: str) -> str:
    """The resource a request to mcpd's ``path`` is at (an access token must name it)."""
    return settings.issuer + path


def _scope(requested: str) -> str:
    wanted = requested.split() or list(SCOPES)
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown:
        raise RedirectError(
            "invalid_scope", f"unknown scope `{unknown[0][:64]}`; scopes: {' '.join(SCOPES)}"
        )
    return " ".join(dict.fromkeys(wanted))


def check_request(db: Session, settings: Settings, q: Mapping[str, str]) -> AuthRequest:
    """Check an authorization request. A bad client or redirect URI raises PageError
    (never a redirect); anything else RedirectError, to be sent to that redirect URI."""
    client = find_client(db, q.get("client_id", ""))
    if client is None:
        raise PageError("unknown client: it must register first (client_id is not known here)")
    redirect_uri = q.get("redirect_uri", "")
    if not redirect_uri and len(client.redirect_uris) == 1:
        redirect_uri = client.redirect_uris[0]
    if not redirect_matches(client.redirect_uris, redirect_uri):
        raise PageError(
            f"the redirect URI `{redirect_uri[:200]}` is not one this client registered; "
            "nothing was sent to it"
        )
    state = q.get("state", "")
    if len(state) > 1000:
        raise PageError("state is longer than 1000 characters")
    req = AuthRequest(client, redirect_uri, state, "", "", "")
    if q.get("response_type") != "code":
        raise BoundRedirectError(req, "unsupported_response_type", "response_type must be `code`")
    method = q.get("code_challenge_method", "")
    challenge = q.get("code_challenge", "")
    if not challenge:
        raise BoundRedirectError(
            req, "invalid_request", "PKCE is required: send code_challenge (S256)"
        )
    if method != "S256":
        raise BoundRedirectError(
            req, "invalid_request", "code_challenge_method must be S256 (plain is refused)"
        )
    if not CODE_CHALLENGE_PATTERN.match(challenge):
        raise BoundRedirectError(req, "invalid_request", "code_challenge is malformed")
    resource = q.get("resource", "")
    if not resource:
        raise BoundRedirectError(
            req, "invalid_target", "resource (RFC 8707) is required: the MCP server URL"
        )
    if not resource_allowed(settings, resource):
        raise BoundRedirectError(
            req, "invalid_target", f"mcpd issues no tokens for `{resource[:200]}`"
        )
    try:
        scope = _scope(q.get("scope", ""))
    except RedirectError as exc:
        raise BoundRedirectError(req, exc.error, exc.description) from None
    return AuthRequest(client, redirect_uri, state, challenge, resource, scope)


class BoundRedirectError(RedirectError):
    """A RedirectError that knows its (checked) request."""

    def __init__(self, req: AuthRequest, error: str, description: str) -> None:
        super().__init__(error, description)
        self.request = req


# -- consent -------------------------------------------------------------------------------


def consent_projects(db: Session, rt: Runtime, user: str) -> list[str]:
    """The projects ``user`` may consent for (the ``oauth-consent`` operation there)."""
    names = db.scalars(select(Project.name).order_by(Project.name))
    subject = f"User:{user}"
    return [p for p in names if rt.authorizer.decide(subject, p, "projects", p, CONSENT).allowed]


def offered_bindings(rt: Runtime, user: str, project: str) -> list[RoleBinding]:
    """What a client may be given in ``project``: at most the user's own bindings there
    (without the OAuth operations themselves: a client never registers or consents)."""
    own = rt.authorizer.clone_bindings(f"User:{user}", project)
    return [b for b in own if str(b).split(",")[0] not in _NOT_DELEGATED]


_NOT_DELEGATED = (f"action:{CONSENT}", f"action:{REGISTER}")


def consent(
    *,
    db: Session,
    rt: Runtime,
    caller: Caller,
    req: AuthRequest,
    project: str,
    chosen: list[str],
) -> str:
    """The user consents: check, then store a one-use code. Returns the raw code.

    Refused (Forbidden, audited) without ``oauth-consent`` in ``project``, or when a chosen
    binding is not one the user holds there (the creator ceiling)."""
    user = caller.principal.user
    assert user is not None
    with unit_of_work(
        db=db,
        rt=rt,
        caller=caller,
        kind="projects",
        action=CONSENT,
        name=project,
        project=project,
        per_object=True,  # asked below, so that a refusal is audited where it is decided
    ) as work:
        try:
            work.require("projects", CONSENT, project, project)
            bindings = scoped_bindings(work, chosen, project)
            work.ceiling(bindings)
        except Forbidden as exc:
            work.refuse(exc, kind="projects", action=CONSENT, name=project, project=project)
        if not db.scalars(select(Project.id).where(Project.name == project)).first():
            raise NotFound(f"project `{project}` not found")
        raw = generate_oauth_token("code")
        user_id = db.scalar(select(User.id).where(User.name == user))
        assert user_id is not None
        db.add(
            OAuthCode(
                code_sha=token_sha256(raw),
                client_id=req.client.id,
                user_id=user_id,
                project=project,
                role_bindings=[str(b) for b in bindings],
                redirect_uri=req.redirect_uri,
                code_challenge=req.code_challenge,
                resource=req.resource,
                scope=req.scope,
                expires_at=utcnow() + timedelta(seconds=rt.settings.oauth_code_ttl),
            )
        )
        work.audit(
            detail={
                "client": req.client.client_id,
                "clientName": req.client.client_name,
                "resource": req.resource,
                "bindings": [str(b) for b in bindings],
            }
        )
    return raw


def scoped_bindings(work: Work, chosen: list[str], project: str) -> list[RoleBinding]:
    if len(chosen) > 100:
        raise BadRequest("at most 100 bindings")
    out = []
    for b in parse_bindings(work.rt.authorizer, chosen):
        if b.project not in ("*", project):
            raise BadRequest(f"`{b}` is for project {b.project}, not {project}")
        out.append(b.in_project(project))
    return out


__all__ = [
    "ANONYMOUS",
    "CONSENT",
    "REGISTER",
    "SCOPES",
    "AuthRequest",
    "BoundRedirectError",
    "PageError",
    "RedirectError",
    "check_request",
    "consent",
    "consent_projects",
    "offered_bindings",
    "resource_allowed",
    "resource_of_request",
    "scoped_bindings",
]
