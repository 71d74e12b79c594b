"""Who is asking: the authenticated caller of a request (users, service accounts, McpTokens,
the public)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    subject: str  # User:<name>, ServiceAccount:<name> or McpToken:<sha>
    user: str | None = None  # the user's name (for a token or service account: None)
    token_name: str | None = None
    token_sha: str | None = None
    token_project: str | None = None
    session_sha: str | None = None
    service_account: str | None = None  # the service account's name
    credential_sha: str | None = None  # the service-account token it signed in with
    # an OAuth access token's resource (RFC 8707): it is good only there
    resource: str | None = None

    @property
    def display(self) -> str:
        if self.service_account is not None:
            return f"serviceaccount {self.service_account}"
        return self.user or f"token {self.token_name}"

    def redact(self, text: str) -> str:
        """``text`` (e.g. a decision's reason) as the caller sees it: a token is named, as in
        /auth/me, never shown by its hash."""
        if self.token_sha is None:
            return text
        return text.replace(self.subject, f"McpToken:{self.token_name}")


__all__ = ["Principal"]
