"""A small typed client for mcpd's REST API, shared by the CLI and mcplocal.

It imports nothing from mcpd: it speaks the wire format (JSON bodies, problem+json
errors, ``Authorization: Bearer``). Errors map onto a short hierarchy::

    ApiError                 any non-2xx answer; .status, .detail, .body
    ├── NotAuthenticated     401: no, bad, expired or revoked credentials
    ├── Denied               403: the policy says no (.body["missing"] for grants)
    ├── NotFound             404
    ├── Conflict             409: name taken or stale version
    └── InvalidInput         422 (and 400)
    Unreachable              mcpd could not be reached at all
"""

from __future__ import annotations

import builtins
from collections.abc import Generator, Iterator
from typing import Any, Final

import httpx

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
    "auditevent": "auditevents",
    "instance": "instances",
}


class ClientError(Exception):
    """Base of the client's errors."""


class Unreachable(ClientError):
    pass


class ApiError(ClientError):
    def __init__(self, status: int, detail: str, body: dict[str, Any]) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.body = body


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


def _raise_for_status(r: httpx.Response) -> None:
    """Raise the ApiError for a non-2xx answer (its body must have been read)."""
    if r.status_code < 400:
        return
    try:
        body = r.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = str(body.get("detail") or r.reason_phrase or f"HTTP {r.status_code}")
    raise _BY_STATUS.get(r.status_code, ApiError)(r.status_code, detail, body)


def collection(kind: str) -> str:
    """``server`` or ``servers`` -> ``servers``; raises ValueError for an unknown kind."""
    if kind in KINDS:
        return KINDS[kind]
    if kind in KINDS.values():
        return kind
    raise ValueError(f"unknown kind `{kind}`; kinds: {', '.join(KINDS)}")


class McpdClient:
    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self._timeout = timeout
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.server, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> McpdClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------

    def request(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = self._http.request(method, f"{API}{path}", **kw)
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach mcpd at {self.server}: {exc}") from exc
        _raise_for_status(r)
        if not r.content:
            return None
        if r.headers.get("content-type", "").startswith("application/json"):
            return r.json()
        return r.text

    # -- resources ----------------------------------------------------------------

    def list(self, kind: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every object of ``kind`` (following pages)."""
        path = f"/{collection(kind)}"
        query = {k: v for k, v in params.items() if v is not None}
        for _ in range(100_000):  # bounded: at most this many pages
            page = self.request("GET", path, params=query)
            yield from page["items"]
            if not page.get("next"):
                return
            query["before" if kind in ("auditevent", "auditevents") else "after"] = page["next"]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/{collection(kind)}/{name}")
        return result

    def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/{collection(kind)}", json=body)
        return result

    def update(self, kind: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("PUT", f"/{collection(kind)}/{name}", json=body)
        return result

    def delete(self, kind: str, name: str) -> None:
        self.request("DELETE", f"/{collection(kind)}/{name}")

    # -- identities -----------------------------------------------------------------

    def login(self, username: str, password: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", "/auth/login", json={"username": username, "password": password}
        )
        return result

    def logout(self) -> None:
        self.request("POST", "/auth/logout")

    def me(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/auth/me")
        return result

    def can_i(
        self, action: str, kind: str, name: str = "", project: str = "", subject: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"action": action, "kind": kind, "name": name, "project": project}
        if subject:
            body["subject"] = subject
        result: dict[str, Any] = self.request("POST", "/auth/can-i", json=body)
        return result

    def revoke_token(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/mcptokens/{name}/revoke")
        return result

    def introspect(self, raw_token: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "GET", "/mcptokens/introspect", headers={"Authorization": f"Bearer {raw_token}"}
        )
        return result

    def project_servers(self, project: str) -> builtins.list[dict[str, Any]]:
        result: builtins.list[dict[str, Any]] = self.request("GET", f"/projects/{project}/servers")[
            "items"
        ]
        return result

    # -- instances and logs ---------------------------------------------------------------

    def instances(self) -> builtins.list[dict[str, Any]]:
        """Every server's instance on this mcpd (STOPPED until first used)."""
        result: builtins.list[dict[str, Any]] = self.request("GET", "/instances")["items"]
        return result

    def instance(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/instances/{name}")
        return result

    def server_logs(
        self, name: str, tail: int = 100, follow: bool = False
    ) -> Generator[str, None, None]:
        """A server's last ``tail`` log lines; with ``follow``, then every new one until
        mcpd ends the stream (when it stops) or the caller stops iterating (``close()``).
        Errors are raised at the first ``next()``."""
        params = {"tail": tail, "follow": "true" if follow else "false"}
        # following waits for lines indefinitely: no read timeout then
        timeout = httpx.Timeout(self._timeout, read=None) if follow else self._timeout
        connected = False
        try:
            with self._http.stream(
                "GET",
                f"{API}/servers/{name}/logs",
                params=params,
                headers={"Accept": "text/plain"},
                timeout=timeout,
            ) as r:
                connected = True
                if r.status_code >= 400:
                    r.read()
                    _raise_for_status(r)
                yield from r.iter_lines()
        except httpx.TransportError as exc:
            what = "lost the connection to" if connected else "cannot reach"
            raise Unreachable(f"{what} mcpd at {self.server}: {exc}") from exc
