"""The async face of the client (mcplocal's): :class:`AsyncMcpdClient`.

It owns its ``httpx2.AsyncClient`` (closed with it: ``async with`` or ``aclose()``), or
borrows one given as ``http=`` (left open, its timeouts apply). The credential is an auth
flow applied to each call to mcpd only, never to the borrowed client's other requests; a
call given its own ``Authorization`` header (``headers=``) is sent with that one instead.
Every method raises the errors of :mod:`client.errors`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Final
from urllib.parse import quote

import anyio
import httpx2

from client.auth import BearerAuth
from client.errors import Unreachable, error_for, raise_for_status
from client.wire import API, decode

__all__ = ["AUDIT_EVENTS", "MY_CALLS", "MY_POLICY", "POLICY_WATCH", "AsyncMcpdClient"]

#: where calls are audited: by a service identity (with `proxy`), and by a user for itself
AUDIT_EVENTS: Final = "/auditevents"
MY_CALLS: Final = "/auth/me/calls"
#: the policy streams: everything (a service identity), and the rules for the caller
POLICY_WATCH: Final = "/policy/watch"
MY_POLICY: Final = "/auth/me/policy"


class AsyncMcpdClient:
    """mcpd's REST API, asynchronously. ``auth`` is a static bearer (a str) or a flow."""

    def __init__(
        self,
        server: str,
        auth: httpx2.Auth | str | None = None,
        *,
        timeout: float | httpx2.Timeout = 30.0,
        http: httpx2.AsyncClient | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.auth = BearerAuth(auth) if isinstance(auth, str) else auth
        self._owned = http is None
        self.http = http or httpx2.AsyncClient(timeout=timeout, transport=transport)
        self._renewing = anyio.Lock()  # one login at a time for many refused requests

    async def aclose(self) -> None:
        if self._owned:
            await self.http.aclose()

    async def __aenter__(self) -> AsyncMcpdClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # -- plumbing ---------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """The URL of ``/api/v1{path}`` on this mcpd."""
        return f"{self.server}{API}{path}"

    def _auth(self, headers: Mapping[str, str] | None) -> dict[str, Any]:
        """The flow for a call, unless the call brings its own Authorization header."""
        if headers is not None and any(k.lower() == "authorization" for k in headers):
            return {"auth": None}
        return {} if self.auth is None else {"auth": self.auth}

    async def request(
        self, method: str, path: str, *, headers: Mapping[str, str] | None = None, **kw: Any
    ) -> Any:
        """``METHOD /api/v1{path}``: the answer's decoded body (JSON, text or None)."""
        try:
            r = await self.http.request(
                method, self.url(path), headers=headers, **self._auth(headers), **kw
            )
        except httpx2.TransportError as exc:
            raise Unreachable(f"cannot reach mcpd at {self.server}: {exc}") from exc
        raise_for_status(r)
        return decode(r)

    async def fresh_headers(self) -> dict[str, str]:
        """The header the auth flow adds to a request now, logging in first when it must
        (for requests made by others: the MCP SDK's to mcpd's per-server endpoints)."""
        auth = self.auth
        if not isinstance(auth, BearerAuth):
            return {}
        if auth.stale():
            await self._login(auth)
        return auth.headers()

    async def renew(self, refused: Mapping[str, str]) -> bool:
        """After mcpd answered 401 to a request made by others with the ``refused`` headers:
        whether there is a fresh bearer now (renewed meanwhile, or logged in again, once)."""
        auth = self.auth
        if not isinstance(auth, BearerAuth):
            return False
        async with self._renewing:
            if auth.headers() != dict(refused):
                return True
            if not auth.can_login:
                return False
            await self._login(auth)
            return True

    async def _login(self, auth: BearerAuth) -> None:
        login = auth.login_request(self.http.build_request("POST", self.url("/")))
        try:
            r = await self.http.send(login, auth=None)
        except httpx2.TransportError as exc:
            raise Unreachable(f"cannot reach mcpd at {self.server}: {exc}") from exc
        auth.accept_login(r)

    # -- identities and projects --------------------------------------------------------------

    async def login(self, username: str, password: str) -> dict[str, Any]:
        body = {"username": username, "password": password}
        result: dict[str, Any] = await self.request("POST", "/auth/login", json=body)
        return result

    async def me(self, *, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "/auth/me", headers=headers)
        return result

    async def project(
        self, name: str, *, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """``GET /api/v1/projects/{name}``: its servers, proxy model and options."""
        path = f"/projects/{quote(name)}"
        result: dict[str, Any] = await self.request("GET", path, headers=headers)
        return result

    def upstream_url(self, server: str, project: str) -> str:
        """mcpd's MCP endpoint for ``server`` in ``project`` (reached with the MCP SDK, the
        headers from :meth:`fresh_headers`)."""
        return self.url(f"/servers/{quote(server)}/mcp?project={quote(project)}")

    async def introspect_oauth(self, token: str) -> dict[str, Any]:
        """RFC 7662 at mcpd's ``/oauth/introspect`` (the caller needs ``proxy``): what an
        OAuth access token acts as (``active``, ``sub``, ``aud``, ``exp``, ``project``)."""
        try:
            r = await self.http.post(
                f"{self.server}/oauth/introspect", data={"token": token}, **self._auth(None)
            )
        except httpx2.TransportError as exc:
            raise Unreachable(f"cannot reach mcpd at {self.server}: {exc}") from exc
        raise_for_status(r)
        result: dict[str, Any] = r.json()
        return result

    # -- audit and the policy stream -----------------------------------------------------------

    async def send_audit(
        self,
        events: list[dict[str, Any]],
        *,
        path: str = AUDIT_EVENTS,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Audit calls made through mcplocal (``path``: AUDIT_EVENTS or MY_CALLS)."""
        await self.request("POST", path, json={"events": events}, headers=headers)

    async def send_audit_lines(
        self,
        lines: list[bytes],
        *,
        path: str = AUDIT_EVENTS,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """:meth:`send_audit` for events that are JSON already (mcplocal's spool lines):
        sent as they are, not parsed and encoded again."""
        body = b'{"events":[' + b",".join(line.rstrip(b"\n") for line in lines) + b"]}"
        sent = {**(headers or {}), "Content-Type": "application/json"}
        await self.request("POST", path, content=body, headers=sent)

    @asynccontextmanager
    async def watch(
        self, path: str = POLICY_WATCH, *, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[AsyncIterator[Any]]:
        """A policy stream (``path``: POLICY_WATCH or MY_POLICY): its messages, one JSON
        value a line, until mcpd ends it. Anything but a 200 raises its ApiError."""
        async with AsyncExitStack() as stack:
            try:
                r = await stack.enter_async_context(
                    self.http.stream("GET", self.url(path), headers=headers, **self._auth(headers))
                )
                if r.status_code != 200:
                    await r.aread()
            except httpx2.TransportError as exc:
                raise Unreachable(f"cannot reach mcpd at {self.server}: {exc}") from exc
            if r.status_code != 200:
                raise error_for(r)
            messages = self._messages(r)
            try:
                yield messages
            finally:
                await messages.aclose()

    async def _messages(self, r: httpx2.Response) -> AsyncGenerator[Any, None]:
        try:
            async for line in r.aiter_lines():
                if line.strip():
                    yield json.loads(line)
        except httpx2.TransportError as exc:
            raise Unreachable(f"lost the connection to mcpd at {self.server}: {exc}") from exc
