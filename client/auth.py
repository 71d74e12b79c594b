"""Credentials as an auth flow (the ``httpx.Auth`` pattern): add the bearer, and on a 401
obtain a fresh one once and retry the request once.

:class:`BearerAuth` holds one of:

* a bearer alone (a session token from ``mcpctl login``, an McpToken): it is added to each
  request, and a 401 is returned as it is;
* a user name and password: it logs in (``POST /api/v1/auth/login`` of the mcpd the request
  goes to) for a bearer before the first request, before the session expires (when
  :data:`RENEW_AT` of its lifetime, as the login's ``expiresAt`` says, has passed, or it
  is older than ``max_age``), and once on a 401, then retries;
* a ``refresh`` callback returning a fresh bearer (or None when it has none): called for the
  first bearer when none was given, and once on a 401.

A 401 it cannot answer with a fresh bearer (a static one, a refused login, a retry refused
again) is kept in :attr:`BearerAuth.refused`, for a daemon to stop cleanly on; the next
answer that is not a 401 clears it.

The flow is a plain generator (:meth:`BearerAuth.auth_flow`): the sync and async clients
drive it alike, and a test drives it without a network.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Generator
from datetime import UTC, datetime
from typing import Final

import httpx2

from client.errors import error_for
from client.wire import API

__all__ = ["LOGIN_PATH", "RENEW_AT", "BearerAuth"]

#: under the API prefix of the requests the flow sees (mcpd may be served under a path)
LOGIN_PATH: Final = "/auth/login"
#: a login is renewed once this share of its session's lifetime has passed
RENEW_AT: Final = 1 / 2


class BearerAuth(httpx2.Auth):
    """``Authorization: Bearer`` for mcpd, renewed once on a 401 when it can be (above)."""

    def __init__(
        self,
        token: str | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        refresh: Callable[[], str | None] | None = None,
        max_age: float | None = None,
        login_path: str = LOGIN_PATH,
    ) -> None:
        self.token = token
        self.username, self._password = username, password
        self._refresh = refresh
        self.max_age = max_age
        self.login_path = login_path
        self._got = time.monotonic() if token else 0.0
        self._renew_at: float | None = None  # (monotonic) when a login's session wants renewing
        self.refused: str | None = None  # why mcpd refused the credential, while it does

    # -- what it knows ----------------------------------------------------------------------

    @property
    def can_login(self) -> bool:
        return bool(self.username) and self._password is not None

    @property
    def renewable(self) -> bool:
        """It can obtain a fresh bearer (a login or a refresh callback)."""
        return self.can_login or self._refresh is not None

    def stale(self) -> bool:
        """The next request must first obtain a bearer: none yet, or (for a login) too old."""
        if not self.renewable:
            return False
        if self.token is None:
            return True
        if not self.can_login:
            return False
        now = time.monotonic()
        if self._renew_at is not None and now >= self._renew_at:
            return True
        return self.max_age is not None and now - self._got > self.max_age

    def renews_in(self) -> float | None:
        """Seconds until a login is renewed before its session expires (None: never)."""
        if not self.can_login or self._renew_at is None:
            return None
        return max(0.0, self._renew_at - time.monotonic())

    def headers(self) -> dict[str, str]:
        """The header added to a request now (none without a bearer)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    # -- obtaining a bearer -------------------------------------------------------------------

    def login_request(self, request: httpx2.Request) -> httpx2.Request:
        """The login for ``request``: to the mcpd it goes to (an API URL), with its timeouts."""
        url = request.url
        at = url.path.find(API + "/")
        prefix = url.path[:at] if at >= 0 else ""
        target = url.copy_with(path=f"{prefix}{API}{self.login_path}", query=None, fragment=None)
        body = {"username": self.username, "password": self._password}
        timeout = {k: v for k, v in request.extensions.items() if k == "timeout"}
        return httpx2.Request("POST", target, json=body, extensions=timeout)

    def accept_login(self, response: httpx2.Response) -> None:
        """Keep the bearer a login answered (read); raise its ApiError if it failed."""
        if response.status_code != 200:
            error = error_for(response)
            if response.status_code == 401:
                self.refused = f"the login as {self.username} was refused: {error.detail}"
            raise error
        body = response.json()
        self._set(str(body["token"]))
        self._renew_at = self._renewal(body.get("expiresAt"))

    def _renewal(self, expires_at: object) -> float | None:
        """When (monotonic) to renew a session that expires at ``expires_at`` (ISO 8601)."""
        if not isinstance(expires_at, str):
            return None
        try:
            expires = datetime.fromisoformat(expires_at)
        except ValueError:
            return None
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        lifetime = max(0.0, (expires - datetime.now(UTC)).total_seconds())
        return self._got + lifetime * RENEW_AT

    def _set(self, token: str) -> None:
        self.token, self._got = token, time.monotonic()
        self._renew_at = None

    def _obtain(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, bool]:
        """Obtain a fresh bearer: a login (yielded to the client) or the callback."""
        if self.can_login:
            response = yield self.login_request(request)
            self.accept_login(response)
            return True
        if self._refresh is not None:
            fresh = self._refresh()
            if fresh and fresh != self.token:
                self._set(fresh)
                return True
        return False

    # -- the flow ----------------------------------------------------------------------------

    def auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        if self.stale():
            yield from self._obtain(request)
        sent = self.token
        if sent:
            request.headers["Authorization"] = f"Bearer {sent}"
        response = yield request
        if response.status_code != 401:
            self.refused = None
            return
        # another request may have renewed it meanwhile; otherwise obtain one, once
        if not self.renewable or (self.token == sent and not (yield from self._obtain(request))):
            self._refuse(request)
            return
        if self.token:
            request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        if response.status_code == 401:
            self._refuse(request)
        else:
            self.refused = None

    def _refuse(self, request: httpx2.Request) -> None:
        self.refused = f"mcpd answered 401 to {request.method} {request.url.path}"

    def _is_login(self, request: httpx2.Request) -> bool:
        return request.method == "POST" and request.url.path.endswith(API + self.login_path)

    # A login's answer is read before the flow takes its bearer; no other answer is (a
    # streamed one stays a stream).

    def sync_auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        flow = self.auth_flow(request)
        request = next(flow)
        while True:
            response = yield request
            if self._is_login(request):
                response.read()
            try:
                request = flow.send(response)
            except StopIteration:
                return

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        flow = self.auth_flow(request)
        request = next(flow)
        while True:
            response = yield request
            if self._is_login(request):
                await response.aread()
            try:
                request = flow.send(response)
            except StopIteration:
                return
