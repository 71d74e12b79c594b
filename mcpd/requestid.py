"""Each request's id: the caller's ``X-Request-Id`` (first 64 characters) or a new one.

Kept in ``request.state.request_id`` (audit events carry it) and echoed in the response's
``X-Request-Id`` (both by :mod:`mcpd.edge`).
"""

from __future__ import annotations

from starlette.types import Scope

from upstream.ids import request_id

HEADER = b"x-request-id"


def request_id_of(scope: Scope) -> str:
    """The caller's id for this request (its first 64 characters), or a new one."""
    for name, value in scope.get("headers") or ():
        if name == HEADER:
            given: str = bytes(value).decode("latin-1")[:64]
            if given:
                return given
            break
    return request_id()
