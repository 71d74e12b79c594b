"""The client's errors: what mcpd answered, or that it could not be reached.

The whole tree, in the httpx manner::

    ClientError              base of every error the client raises
    ├── Unreachable          mcpd could not be reached, or the connection was lost
    └── ApiError             mcpd answered an error; .status, .detail, .body, .text
        ├── NotAuthenticated 401: no, bad, expired or revoked credentials
        ├── Denied           403: the policy says no (.body["missing"] for grants)
        ├── NotFound         404
        ├── Conflict         409: name taken or stale version
        └── InvalidInput     422 (and 400)

``.detail`` is mcpd's problem+json ``detail`` (the message for a user), ``.body`` the
parsed JSON object (``{}`` when the body is not one) and ``.text`` the raw body.
An Unreachable's ``__cause__`` is the transport's own error.
"""

from __future__ import annotations

from typing import Any, Final

import httpx2

__all__ = [
    "ApiError",
    "ClientError",
    "Conflict",
    "Denied",
    "InvalidInput",
    "NotAuthenticated",
    "NotFound",
    "Unreachable",
    "error_for",
    "raise_for_status",
    "transport_error",
]


class ClientError(Exception):
    """Base of the client's errors."""


class Unreachable(ClientError):
    """mcpd could not be reached at all, or the connection to it was lost."""


class ApiError(ClientError):
    """mcpd answered with an error status."""

    def __init__(self, status: int, detail: str, body: dict[str, Any], text: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.body = body
        self.text = text


class NotAuthenticated(ApiError):
    pass


class Denied(ApiError):
    pass


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    pass


class InvalidInput(ApiError):
    pass


_BY_STATUS: Final[dict[int, type[ApiError]]] = {
    400: InvalidInput,
    401: NotAuthenticated,
    403: Denied,
    404: NotFound,
    409: Conflict,
    422: InvalidInput,
}


def error_for(r: httpx2.Response) -> ApiError:
    """The ApiError for an error answer (its body must have been read)."""
    try:
        body = r.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or r.reason_phrase or f"HTTP {r.status_code}")
    return _BY_STATUS.get(r.status_code, ApiError)(r.status_code, detail, body, r.text)


def raise_for_status(r: httpx2.Response) -> None:
    """Raise the ApiError for a 4xx or 5xx answer (its body must have been read)."""
    if r.status_code >= 400:
        raise error_for(r)


def transport_error(exc: BaseException) -> BaseException:
    """The transport's own error behind an Unreachable (``exc`` itself otherwise): what a
    log line or status names when mcpd is away."""
    if isinstance(exc, Unreachable) and exc.__cause__ is not None:
        return exc.__cause__
    return exc
