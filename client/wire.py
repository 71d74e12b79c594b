"""mcpd's REST wire format, as both faces of the client speak it: the API prefix, the
resource kinds and their collections, and what an answer's body decodes to."""

from __future__ import annotations

from typing import Any, Final

import httpx2

__all__ = ["API", "HEADERS", "KINDS", "collection", "decode"]

API: Final = "/api/v1"

#: CLI noun (singular) -> API collection (plural)
KINDS: Final = {
    "user": "users",
    "group": "groups",
    "project": "projects",
    "server": "servers",
    "secret": "secrets",
    "rbac": "rbac",
    "mcptoken": "mcptokens",
    "serviceaccount": "serviceaccounts",
    "auditevent": "auditevents",
    "instance": "instances",
    "oauthgrant": "oauthgrants",
}

#: the request headers every call carries
HEADERS: Final = {"Accept": "application/json"}


def collection(kind: str) -> str:
    """``server`` or ``servers`` -> ``servers``; raises ValueError for an unknown kind."""
    if kind in KINDS:
        return KINDS[kind]
    if kind in KINDS.values():
        return kind
    raise ValueError(f"unknown kind `{kind}`; kinds: {', '.join(KINDS)}")


def decode(r: httpx2.Response) -> Any:
    """A successful answer's body: JSON, text, or None when empty (read)."""
    if not r.content:
        return None
    if r.headers.get("content-type", "").startswith("application/json"):
        return r.json()
    return r.text
