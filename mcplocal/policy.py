"""mcplocal's copy of the shared enforcer, kept equal to mcpd's by following its changes.

mcpd's ``GET /api/v1/policy/watch`` streams a snapshot (model, policy files, stored rules,
McpTokens) and then every change its enforcer applies. :class:`PolicyFollower` builds an
:class:`authz.Authorizer` from the snapshot (the same model and files, written to a private
directory, so decisions are mcpd's to the line) and replays each change. A revocation is
therefore enforced here as soon as mcpd streams it (milliseconds), not after a TTL.

When the stream breaks, the follower reconnects with backoff and starts again from a new
snapshot; meanwhile it keeps deciding on what it has, and ``synced`` is False (``/readyz``
says so). Until the first snapshot arrives there is no authorizer and every request is
refused. mcpd ends the stream when the credential it was opened with is no longer valid
(a session expired, a token revoked); the client's auth flow logs in again where it can.
A credential mcpd refuses :data:`MAX_REFUSALS` times in a row (with backoff) stops the
follower for good: ``refused`` says why, the authorizer is dropped (nothing is decided on
a policy this process may no longer read), and a restart with a valid credential is
needed - no silent loop.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2

from authz import Authorizer
from authz.wire import apply_change, grant_from_json, rule_from_json
from client import API, ApiError, AsyncMcpdClient, NotAuthenticated
from client.errors import transport_error

log = logging.getLogger("mcplocal.policy")

#: 401s in a row before the follower gives up on its credential
MAX_REFUSALS = 3


class PolicyFollower:
    def __init__(
        self,
        mcpd_url: str,
        auth: httpx2.Auth | str,
        *,
        path: str = "/api/v1/policy/watch",
        workdir: Path | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        if not path.startswith(API + "/"):
            raise ValueError(f"`{path}` is not a path of mcpd's API ({API}/...)")
        self.mcpd_url = mcpd_url.rstrip("/")
        self.url = self.mcpd_url + path
        self._path = path.removeprefix(API)
        self._auth = auth  # mcplocal's own credential for mcpd (the client's auth flow)
        self._dir = Path(tempfile.mkdtemp(prefix="mcplocal-policy-", dir=workdir))
        self.on_change = on_change
        self.authorizer: Authorizer | None = None
        self.synced = False
        self._lost_at = time.monotonic()  # when ``synced`` last went False
        self.last_error: str | None = None
        self.refused: str | None = None  # set when mcpd refused the credential for good
        self.changes = 0  # events applied, for tests and metrics
        self._revision: str | None = None  # mcpd's name for the state followed
        self._ready = anyio.Event()

    @property
    def revision(self) -> str | None:
        """The policy revision decisions are made under: as mcpd named it (a user's own
        view holds only part of the policy), else this copy's own (the same, when whole)."""
        if self._revision is not None:
            return self._revision
        authorizer = self.authorizer
        return authorizer.revision if authorizer is not None else None

    def fresh(self, grace: float) -> bool:
        """Whether the policy followed is mcpd's now: synced, or a copy that lost its stream
        less than ``grace`` seconds ago (a reconnect - e.g. when the login it was opened
        with lapses after a renewal - is not an outage)."""
        if self.synced:
            return True
        return self.authorizer is not None and time.monotonic() - self._lost_at < grace

    async def wait_ready(self, timeout: float) -> bool:
        with anyio.move_on_after(timeout):
            await self._ready.wait()
        return self.authorizer is not None

    async def run(self) -> None:
        """Follow mcpd forever: connect, snapshot, replay; reconnect with backoff."""
        delay = 0.2
        refusals = 0
        while True:
            began = time.monotonic()
            try:
                await self._follow_once()
                refusals = 0
            except NotAuthenticated as exc:
                refusals += 1
                self.last_error = f"mcpd refused mcplocal's credential (revoked?): {exc.detail}"
                if refusals >= MAX_REFUSALS:
                    self.refused = self.last_error[:500]
                    self.synced, self.authorizer = False, None
                    log.error(
                        "%s; %d times in a row: not trying again (give mcplocal a valid "
                        "credential and restart it)",
                        self.refused,
                        refusals,
                    )
                    self._changed()
                    return
                log.warning("%s", self.last_error)
            except Exception as exc:  # mcpd away, a broken stream: try again
                shown = transport_error(exc)
                self.last_error = f"{type(shown).__name__}: {shown}"[:500]
                log.warning("policy stream from %s lost: %s", self.url, self.last_error)
            if self.synced:
                self.synced, self._lost_at = False, time.monotonic()
            delay = 0.2 if time.monotonic() - began > 30 else min(delay * 2, 10.0)
            await anyio.sleep(delay)

    async def _follow_once(self) -> None:
        timeout = httpx2.Timeout(10.0, read=60.0)  # heartbeats come every 15 s
        async with AsyncMcpdClient(self.mcpd_url, self._auth, timeout=timeout) as mcpd:
            try:
                async with mcpd.watch(self._path) as messages:
                    async for message in messages:
                        if "snapshot" in message:
                            self._load(message["snapshot"])
                        elif message.get("reload"):
                            return  # mcpd rebuilt its state: start again from a snapshot
                        elif not message.get("heartbeat"):
                            self._apply(message)
            except NotAuthenticated:
                raise
            except ApiError as exc:
                raise RuntimeError(f"mcpd answered {exc.status}: {exc.text[:300]}") from None

    def _load(self, snap: dict[str, Any]) -> None:
        model = self._dir / "model.conf"
        model.write_text(snap["model"], encoding="utf-8")
        policies = self._dir / str(snap.get("policyDir") or "policies")
        policies.mkdir(exist_ok=True)
        for old in policies.glob("*.csv"):
            old.unlink()
        for name, text in snap["files"].items():
            if "/" in name or not name.endswith(".csv"):
                raise ValueError(f"unexpected policy file name {name!r}")
            (policies / name).write_text(text, encoding="utf-8")
        authorizer = Authorizer(
            model_path=model,
            policy_dir=policies,
            stored=[rule_from_json(r) for r in snap["rules"]],
            tokens=[grant_from_json(t) for t in snap["tokens"]],
        )
        self.authorizer = authorizer  # one assignment: requests see old or new, never half
        self._revision = _revision(snap)
        self.synced = True
        self.last_error = None
        self._ready.set()
        log.info("policy snapshot: %d rules, %d tokens", len(authorizer.index), len(snap["tokens"]))
        self._changed()

    def _apply(self, message: dict[str, Any]) -> None:
        authorizer = self.authorizer
        if authorizer is None:
            raise RuntimeError("a change arrived before the snapshot")
        apply_change(authorizer, message)
        self._revision = _revision(message)
        self.changes += 1
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                log.exception("policy change hook failed")


def _revision(message: dict[str, Any]) -> str | None:
    revision = message.get("revision")
    return revision if isinstance(revision, str) and 0 < len(revision) <= 16 else None
