"""Policy changes as JSON: how mcpd sends them to its followers (mcplocal's enforcer copy,
``GET /api/v1/policy/watch``) and to the other replicas (LISTEN/NOTIFY), and how those
apply them. One format, written and read here only.

A rule is ``[ptype, v0, ..., source]``; a token grant a camelCase object; a change
``{"added", "removed", "tokens", "tokensRemoved"}`` or ``{"reload": true}``.
"""

from __future__ import annotations

from typing import Any

from authz.engine import Authorizer, PolicyEvent, TokenGrant
from authz.policy import Rule


def rule_json(rule: Rule | None) -> dict[str, str] | None:
    """A policy line in the tools' JSON documents: ``{"rule": "p, ...", "source": "file:line"}``."""
    if rule is None:
        return None
    return {"rule": str(rule), "source": rule.source}


def rule_to_json(rule: Rule) -> list[str]:
    return [rule.ptype, *rule.values, rule.source]


def rule_from_json(values: list[str]) -> Rule:
    *fields, source = values
    return Rule(fields[0], tuple(fields[1:]), source)


def grant_to_json(grant: TokenGrant) -> dict[str, Any]:
    return {
        "sha": grant.sha,
        "project": grant.project,
        "creator": grant.creator,
        "name": grant.name,
        "expiresAt": grant.expires_at,
        "revoked": grant.revoked,
        "creatorDisabled": grant.creator_disabled,
    }


def grant_from_json(d: dict[str, Any]) -> TokenGrant:
    return TokenGrant(
        sha=str(d["sha"]),
        project=str(d["project"]),
        creator=str(d["creator"]),
        name=str(d.get("name") or ""),
        expires_at=d.get("expiresAt"),
        revoked=bool(d.get("revoked")),
        creator_disabled=bool(d.get("creatorDisabled")),
    )


def event_to_json(event: PolicyEvent) -> dict[str, Any]:
    if event.reload:
        return {"reload": True}
    return {
        "added": [rule_to_json(r) for r in event.added],
        "removed": [rule_to_json(r) for r in event.removed],
        "tokens": [grant_to_json(g) for g in event.tokens],
        "tokensRemoved": list(event.tokens_removed),
    }


def apply_change(authorizer: Authorizer, change: dict[str, Any], *, exact: bool = False) -> None:
    """Apply a change (not a reload) in the JSON form to ``authorizer``; ``exact`` as in
    :meth:`Authorizer.apply` (for replaying what a reload may already hold)."""
    added = [rule_from_json(r) for r in change.get("added", [])]
    removed = [rule_from_json(r) for r in change.get("removed", [])]
    if added or removed:
        authorizer.apply(added=added, removed=removed, exact=exact)
    for grant in change.get("tokens", []):
        authorizer.register_token(grant_from_json(grant))
    for sha in change.get("tokensRemoved", []):
        authorizer.unregister_token(str(sha))
