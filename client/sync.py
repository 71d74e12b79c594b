"""The sync face of the client (the CLI's): :class:`McpdClient`.

Every method raises the errors of :mod:`client.errors`: an ApiError subclass for mcpd's
error answers, Unreachable when mcpd cannot be reached.
"""

from __future__ import annotations

import builtins
from collections.abc import Generator, Iterator
from typing import Any
from urllib.parse import quote

import httpx2

from client.auth import BearerAuth
from client.errors import Unreachable, raise_for_status
from client.wire import API, HEADERS, collection, decode

__all__ = ["McpdClient"]


class McpdClient:
    """mcpd's REST API, synchronously. ``token`` is a static bearer; ``auth`` any flow
    (e.g. a :class:`~client.auth.BearerAuth` that can log in again)."""

    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        auth: httpx2.Auth | None = None,
        timeout: float = 30.0,
        transport: httpx2.BaseTransport | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self._timeout = timeout
        self.auth = auth if auth is not None else BearerAuth(token) if token else None
        self._http = httpx2.Client(
            base_url=self.server,
            headers=HEADERS,
            timeout=timeout,
            transport=transport,
            auth=self.auth,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> McpdClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------

    def request(self, method: str, path: str, **kw: Any) -> Any:
        """``METHOD /api/v1{path}``: the answer's decoded body (JSON, text or None). A call
        given its own ``Authorization`` header is sent with that one, not the flow's."""
        if any(k.lower() == "authorization" for k in kw.get("headers") or {}):
            kw.setdefault("auth", None)
        try:
            r = self._http.request(method, f"{API}{path}", **kw)
        except httpx2.TransportError as exc:
            raise Unreachable(f"cannot reach mcpd at {self.server}: {exc}") from exc
        raise_for_status(r)
        return decode(r)

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

    def restore(
        self, manifest: str, *, dry_run: bool = False, path: str = "/restore"
    ) -> dict[str, Any]:
        """``POST /restore``: every document of ``manifest`` in one transaction, or none
        (``path="/apply"``: the same, as ``mcpctl apply``, needing no ``restore`` operation)."""
        result: dict[str, Any] = self.request(
            "POST",
            path,
            content=manifest.encode(),
            headers={"Content-Type": "application/yaml"},
            params={"dryRun": "true"} if dry_run else None,
        )
        return result

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

    def access_list(self, subject: str | None = None, project: str | None = None) -> dict[str, Any]:
        """The caller's (or ``subject``'s) access list: an ``AccessList`` document."""
        params = {k: v for k, v in (("subject", subject), ("project", project)) if v is not None}
        result: dict[str, Any] = self.request("GET", "/auth/can-i/list", params=params)
        return result

    def who_can(self, verb: str, kind: str, name: str = "", project: str = "") -> dict[str, Any]:
        """Every subject allowed a request: a ``WhoCan`` document."""
        params = {"verb": verb, "kind": kind, "name": name, "project": project}
        result: dict[str, Any] = self.request("GET", "/auth/who-can", params=params)
        return result

    def revoke_token(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/mcptokens/{name}/revoke")
        return result

    def mint_service_token(self, name: str, ttl: str = "never") -> dict[str, Any]:
        """A further token of service account ``name`` (``token`` in the answer, once)."""
        path = f"/serviceaccounts/{quote(name)}/tokens"
        result: dict[str, Any] = self.request("POST", path, json={"ttl": ttl})
        return result

    def revoke_service_token(self, name: str, prefix: str) -> dict[str, Any]:
        path = f"/serviceaccounts/{quote(name)}/tokens/{quote(prefix)}/revoke"
        result: dict[str, Any] = self.request("POST", path)
        return result

    def introspect(self, raw_token: str) -> dict[str, Any]:
        """What mcpd knows of an McpToken, asked with that token itself (not ours)."""
        result: dict[str, Any] = self.request(
            "GET",
            "/mcptokens/introspect",
            headers={"Authorization": f"Bearer {raw_token}"},
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
        timeout = httpx2.Timeout(self._timeout, read=None) if follow else self._timeout
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
                    raise_for_status(r)
                yield from r.iter_lines()
        except httpx2.TransportError as exc:
            what = "lost the connection to" if connected else "cannot reach"
            raise Unreachable(f"{what} mcpd at {self.server}: {exc}") from exc
