"""Bearer credentials: McpTokens, service-account tokens, login session tokens, and OAuth
tokens.

All are a fixed prefix plus the base62 encoding of 32 random bytes. Only their
SHA-256 (hex) is stored; the raw value is shown once. Comparisons are constant-time.
The prefix tells mcpd's auth middleware which kind of credential it holds. OAuth
access tokens (``mcpctl_oat_``) act as the McpToken of their grant; OAuth refresh tokens
(``mcpctl_ort_``) are never bearers, only exchanged at mcpd's token endpoint. OAuth
authorization codes (``mcpctl_oac_``) are one-use.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Final, Literal

MCP_TOKEN_PREFIX: Final = "mcpctl_pat_"  # noqa: S105 - a prefix, not a secret
SESSION_TOKEN_PREFIX: Final = "mcpctl_ses_"  # noqa: S105
SERVICE_TOKEN_PREFIX: Final = "mcpctl_sa_"  # noqa: S105 - a service account's credential
OAUTH_ACCESS_PREFIX: Final = "mcpctl_oat_"
OAUTH_REFRESH_PREFIX: Final = "mcpctl_ort_"
OAUTH_CODE_PREFIX: Final = "mcpctl_oac_"

_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RANDOM_BYTES: Final = 32
# 32 bytes need at most 43 base62 digits; we pad to exactly 43 so lengths are fixed.
_BODY_LEN: Final = 43
_BODY = re.compile(r"^[0-9A-Za-z]{43}$")

#: How many characters of a token are shown for display (prefix + a few), never more.
DISPLAY_CHARS: Final = len(MCP_TOKEN_PREFIX) + 6

TokenKind = Literal["mcptoken", "session", "serviceaccount", "oauth", "refresh", "code"]
_KINDS: Final[tuple[tuple[str, TokenKind], ...]] = (
    (MCP_TOKEN_PREFIX, "mcptoken"),
    (SESSION_TOKEN_PREFIX, "session"),
    (SERVICE_TOKEN_PREFIX, "serviceaccount"),
    (OAUTH_ACCESS_PREFIX, "oauth"),
    (OAUTH_REFRESH_PREFIX, "refresh"),
    (OAUTH_CODE_PREFIX, "code"),
)


def base62(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(reversed(out)).rjust(_BODY_LEN, "0")


def _generate(prefix: str) -> str:
    return prefix + base62(secrets.token_bytes(_RANDOM_BYTES))


def generate_mcp_token() -> str:
    """A new McpToken: ``mcpctl_pat_`` + base62 of 32 random bytes."""
    return _generate(MCP_TOKEN_PREFIX)


def generate_session_token() -> str:
    """A new login session token: ``mcpctl_ses_`` + base62 of 32 random bytes."""
    return _generate(SESSION_TOKEN_PREFIX)


def generate_service_token() -> str:
    """A new service-account token: ``mcpctl_sa_`` + base62 of 32 random bytes."""
    return _generate(SERVICE_TOKEN_PREFIX)


def generate_oauth_token(kind: Literal["oauth", "refresh", "code"]) -> str:
    """A new OAuth access token, refresh token or authorization code."""
    prefix = {"oauth": OAUTH_ACCESS_PREFIX, "refresh": OAUTH_REFRESH_PREFIX}
    return _generate(prefix.get(kind, OAUTH_CODE_PREFIX))


def token_sha256(raw: str) -> str:
    """The stored form of a token: SHA-256 of its UTF-8 bytes, lowercase hex."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def token_kind(raw: str) -> TokenKind | None:
    """Which kind of credential ``raw`` is, by prefix and shape; None if none."""
    for prefix, kind in _KINDS:
        if raw.startswith(prefix) and _BODY.match(raw[len(prefix) :]):
            return kind
    return None


def display_prefix(raw: str) -> str:
    """The part of a token safe to show and store for display (e.g. ``mcpctl_pat_3fZ9aQ``)."""
    return raw[:DISPLAY_CHARS]


def hashes_equal(a: str, b: str) -> bool:
    """Constant-time comparison of two hex digests (or any two strings)."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
