"""mcpd's errors and their wire form: ``application/problem+json`` (RFC 9457).

ApiError              base: status, title, detail (a sentence a person can act on)
├── BadRequest        400
├── Unauthorized      401  no, malformed, unknown, expired or revoked credentials
├── Forbidden         403  denied by policy; ``missing`` lists what a grant lacks
├── NotFound          404  absent, or present but not visible to the caller
├── Conflict          409  name taken, or a stale ``version``
├── Invalid           422  a body or parameter fails validation (also: a value the
│                          database refuses - too long, out of range, a NUL character)
└── TooManyRequests   429  login rate limit

The database away (restarting, unreachable, shutting down) or busy is a 503 with
``Retry-After``: nothing was written (the transaction did not commit), the request may be
sent again.

OAuthError            the OAuth endpoints' own wire form (RFC 6749 5.2): ``{"error",
                      "error_description"}``, not problem+json
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("mcpd")

PROBLEM = "application/problem+json"


class ApiError(Exception):
    status = 500
    title = "Internal Server Error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}


class BadRequest(ApiError):
    status, title = 400, "Bad Request"


class Unauthorized(ApiError):
    status, title = 401, "Unauthorized"

    def __init__(self, detail: str = "missing or invalid credentials", **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {"WWW-Authenticate": 'Bearer realm="mcpd", error="invalid_token"'}


class Forbidden(ApiError):
    """A deny. mcpd audits every one that reaches the client; ``audited`` marks those
    already written to the audit log where they arose."""

    status, title = 403, "Forbidden"
    audited = False


class NotFound(ApiError):
    status, title = 404, "Not Found"


class Conflict(ApiError):
    status, title = 409, "Conflict"


class Invalid(ApiError):
    status, title = 422, "Unprocessable Content"


class TooManyRequests(ApiError):
    status, title = 429, "Too Many Requests"


class OAuthError(Exception):
    """An OAuth endpoint's error: an RFC 6749 ``error`` code and a sentence to act on."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(loc[0] if loc else "request")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        resp = problem(exc.status, exc.title, exc.detail, **exc.extra)
        resp.headers.update(exc.headers)
        return resp

    def _message(error: Any) -> str:
        """pydantic's message, without the ``Value error, `` of a validator's ValueError."""
        return str(error.get("msg", "")).removeprefix("Value error, ")

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _location(tuple(e.get("loc", ()))), "message": _message(e)}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        return problem(422, "Unprocessable Content", detail, errors=errors)

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        # only the driver's message: SQLAlchemy's text would log the (maybe secret) parameters
        log.warning(
            "database refused a value on %s %s: %s", request.method, request.url.path, exc.orig
        )
        return problem(
            422,
            "Unprocessable Content",
            "a value is too long, out of range, or contains a NUL character",
        )

    @app.exception_handler(OperationalError)
    async def _database_away(request: Request, exc: OperationalError) -> JSONResponse:
        return database_unavailable(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        resp = problem(exc.status_code, str(exc.detail), str(exc.detail))
        if exc.headers:
            resp.headers.update(exc.headers)
        return resp

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal Server Error", "internal error; see mcpd's log")


def database_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
    """The 503 of a database away or busy: one log line, the driver's message only
    (SQLAlchemy's text would log the statement's parameters)."""
    lines = str(exc.orig).strip().splitlines()
    log.warning(
        "database unavailable on %s %s: %s",
        request.method,
        request.url.path,
        lines[0] if lines else type(exc.orig).__name__,
    )
    resp = problem(
        503,
        "Service Unavailable",
        "mcpd's database is unavailable or busy (restarting?); nothing was written: retry shortly",
    )
    resp.headers["Retry-After"] = "1"
    return resp
