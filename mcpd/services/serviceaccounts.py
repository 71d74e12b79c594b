"""Service accounts: machine identities (mcplocal, automation) and their tokens.

A service account is the subject ``ServiceAccount:<name>``, bound by RBAC like a user
(``mcpctl create rbac ... --subject ServiceAccount:NAME``); it holds nothing until bound.
It signs in with a token (``mcpctl_sa_...``), stored as SHA-256 only and shown once, that
does not lapse with a login session: valid until revoked (or an optional expiry). An
account may hold several tokens at once, so a rotation has no gap: mint a new one, move
the client to it, revoke the old one.

Minting a token hands over everything the account holds, so it needs ``update`` on the
account *and* the creator ceiling over the account's bindings (``Work.ceiling_of``), as
creating the account does (bindings that still name it go to whoever creates it).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from authz.tokens import display_prefix, generate_service_token, token_sha256
from mcpd.errors import Conflict, NotFound
from mcpd.models import ServiceAccount, ServiceAccountToken, utcnow
from mcpd.runtime import Runtime
from mcpd.schemas.serviceaccounts import ServiceAccountIn, ServiceAccountUpdate
from mcpd.services.common import check_version, get_or_404, page, taken
from mcpd.services.mcptokens import parse_ttl
from mcpd.services.work import Caller, Work, unit_of_work

#: tokens an account may hold that are not revoked: two for a rotation, a few spare
MAX_LIVE_TOKENS = 5


def subject_of(name: str) -> str:
    return f"ServiceAccount:{name}"


def list_accounts(
    *, db: Session, limit: int, after: str | None
) -> tuple[list[ServiceAccount], str | None]:
    return page(db, ServiceAccount, limit, after)


def get_account(*, db: Session, name: str) -> ServiceAccount:
    account: ServiceAccount = get_or_404(db, ServiceAccount, name, "serviceaccount")
    return account


def _mint(work: Work, account: ServiceAccount, ttl: str) -> tuple[ServiceAccountToken, str]:
    """A new token of ``account`` (in the unit's transaction); its raw value is stored nowhere."""
    live = [t for t in account.tokens if t.revoked_at is None]
    if len(live) >= MAX_LIVE_TOKENS:
        raise Conflict(
            f"serviceaccount `{account.name}` has {len(live)} tokens that are not revoked "
            f"(at most {MAX_LIVE_TOKENS}): revoke one first (`mcpctl serviceaccount revoke "
            f"{account.name} PREFIX`)"
        )
    raw = generate_service_token()
    cred = ServiceAccountToken(
        token_sha=token_sha256(raw),
        prefix=display_prefix(raw),
        created_by=work.principal.display,
        expires_at=parse_ttl(ttl, datetime.now(UTC)),
    )
    account.tokens.append(cred)
    return cred, raw


def create_account(
    *, db: Session, rt: Runtime, caller: Caller, spec: ServiceAccountIn, token: bool = True
) -> tuple[ServiceAccount, str | None]:
    """Create an account and (unless ``token`` is False) its first token."""
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="serviceaccounts", action="create", name=spec.name
    ) as work:
        taken(db, ServiceAccount, spec.name, "serviceaccount")
        # bindings that still name this account go to whoever holds its token
        work.ceiling_of(subject_of(spec.name))
        account = ServiceAccount(
            name=spec.name, description=spec.description, created_by=caller.principal.display
        )
        db.add(account)
        raw = None
        if token:
            cred, raw = _mint(work, account, spec.token_ttl)
            work.audit(detail={"token": cred.prefix})
        else:
            work.audit()
    return account, raw


def update_account(
    *, db: Session, rt: Runtime, caller: Caller, name: str, change: ServiceAccountUpdate
) -> ServiceAccount:
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="serviceaccounts", action="update", name=name
    ) as work:
        account = get_account(db=db, name=name)
        check_version(account, change.version, "serviceaccount")
        account.description = change.description
        account.version += 1
        work.audit(detail={"fields": ["description"]})
    return account


def mint_token(
    *, db: Session, rt: Runtime, caller: Caller, name: str, ttl: str = "never"
) -> tuple[ServiceAccount, ServiceAccountToken, str]:
    """A further token of account ``name`` (a rotation's new one); the others stay valid."""
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="serviceaccounts", action="update", name=name
    ) as work:
        account = get_account(db=db, name=name)
        work.ceiling_of(subject_of(name))  # the token holds all the account holds
        cred, raw = _mint(work, account, ttl)
        account.version += 1
        work.audit(action="mint", detail={"token": cred.prefix})
    return account, cred, raw


def revoke_token(
    *, db: Session, rt: Runtime, caller: Caller, name: str, prefix: str
) -> ServiceAccount:
    """Revoke the account's token shown as ``prefix``, at once. Twice is a no-op."""
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="serviceaccounts", action="update", name=name
    ) as work:
        account = get_account(db=db, name=name)
        found = [t for t in account.tokens if t.prefix == prefix]
        if not found:
            shown = ", ".join(t.prefix for t in account.tokens) or "none"
            raise NotFound(f"serviceaccount `{name}` has no token `{prefix}` (its tokens: {shown})")
        cred = found[0]
        if cred.revoked_at is not None:
            return account
        cred.revoked_at = utcnow()
        account.version += 1
        work.audit(action="revoke", detail={"token": prefix})
        sha = cred.token_sha
        work.after_commit(lambda: rt.session_cache.forget(sha), before_policy=True)
    return account


def delete_account(*, db: Session, rt: Runtime, caller: Caller, name: str) -> None:
    """Delete the account and every token of it (its RBAC bindings stay, as a user's do)."""
    with unit_of_work(
        db=db, rt=rt, caller=caller, kind="serviceaccounts", action="delete", name=name
    ) as work:
        account = get_account(db=db, name=name)
        shas = [t.token_sha for t in account.tokens]
        db.delete(account)
        work.audit()

        def gone() -> None:
            for sha in shas:
                rt.session_cache.forget(sha)

        work.after_commit(gone, before_policy=True)


__all__ = [
    "MAX_LIVE_TOKENS",
    "create_account",
    "delete_account",
    "get_account",
    "list_accounts",
    "mint_token",
    "revoke_token",
    "subject_of",
    "update_account",
]
