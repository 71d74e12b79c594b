"""``GET /api/v1/policy/watch``: the whole policy, then every change to it, as a stream.

mcplocal keeps its own copy of the shared enforcer (SPEC §7: it decides in its own
process). It follows this stream: the first line is a snapshot - the model, the policy
files, the stored rules and the McpTokens (hashes and grants, never a raw token) - and
each later line one change, in order, as this mcpd's enforcer applied it. A follower that
loses the stream reconnects and starts again from a new snapshot, so it never has to
know what it missed. A line ``{"heartbeat": true}`` comes every 15 seconds of silence.
The stream ends when the credential it was opened with no longer holds (a login session
expired or ended, a token revoked) or, for the whole policy, no longer has ``proxy``:
checked every :data:`CREDENTIAL_CHECK_SECONDS`, so a revoked follower learns nothing more
and must connect again (its client re-authenticates where it can).

Needs the ``proxy`` operation (McpTokens never have it: see policies/deny.csv).
``GET /api/v1/auth/me/policy`` is the same for the calling user alone: the rules that
decide for it (``mcplocal stdio`` runs with a user's own login).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from authz import Authorizer, PolicyEvent, Rule, TokenGrant
from authz.policy import policy_files
from authz.wire import event_to_json, grant_to_json, rule_to_json
from mcpd.api.deps import PrincipalDep, RuntimeDep, bearer, caller_of
from mcpd.errors import ApiError, Forbidden
from mcpd.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["policy"])

HEARTBEAT_SECONDS = 15.0
CREDENTIAL_CHECK_SECONDS = 1.0
MAX_BACKLOG = 10_000  # a follower this far behind is cut off (and starts again)


def _snapshot(authorizer: Authorizer, stored: list[Rule], tokens: list[TokenGrant]) -> Any:
    return {
        "model": authorizer.model_path.read_text(encoding="utf-8"),
        "policyDir": authorizer.policy_dir.name,
        "files": {
            p.name: p.read_text(encoding="utf-8") for p in policy_files(authorizer.policy_dir)
        },
        "rules": [rule_to_json(r) for r in stored],
        "tokens": [grant_to_json(g) for g in tokens],
        "revision": authorizer.revision,
    }


class _Scope:
    """What a follower may see: everything (``proxy``), or only what decides for one user.

    A user's own decisions depend only on the rules whose subject is the user or one of
    its groups (and on the files). Those are sent; a membership change touching the user
    changes that set, so it is answered with ``reload`` (a new snapshot)."""

    def __init__(self, authorizer: Authorizer, subject: str | None) -> None:
        self.authorizer = authorizer
        self.subject = subject

    def _closure(self) -> set[str]:
        assert self.subject is not None
        return set(self.authorizer.index.subjects_of(self.subject)) | {self.subject}

    def rules(self, stored: list[Rule]) -> list[Rule]:
        if self.subject is None:
            return stored
        mine = self._closure()
        return [r for r in stored if r.values[0] in mine]

    def event(self, event: PolicyEvent) -> PolicyEvent | None:
        """The event as this follower sees it; None when it concerns nothing it sees."""
        if self.subject is None or event.reload:
            return event
        mine = self._closure()
        if any(r.ptype != "p" and r.values[0] in mine for r in (*event.added, *event.removed)):
            return PolicyEvent(reload=True)
        added = tuple(r for r in event.added if r.values[0] in mine)
        removed = tuple(r for r in event.removed if r.values[0] in mine)
        return PolicyEvent(added=added, removed=removed) if added or removed else None


def _holds(rt: Runtime, request: Request, operation: str | None) -> Callable[[], Awaitable[bool]]:
    """Whether the stream's credential still holds (and still has ``operation``)."""
    raw = bearer(request)

    async def holds() -> bool:
        try:
            p = await caller_of(rt, raw)
        except ApiError:
            return False
        return operation is None or rt.authorizer.decide(p.subject, "", "*", "", operation).allowed

    return holds


async def _watch(
    rt: Runtime, scope: _Scope, holds: Callable[[], Awaitable[bool]]
) -> StreamingResponse:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[PolicyEvent | None] = asyncio.Queue()

    def listener(event: PolicyEvent) -> None:  # runs in a committing thread
        loop.call_soon_threadsafe(queue.put_nowait, event if queue.qsize() < MAX_BACKLOG else None)

    stored, tokens = await run_in_threadpool(rt.authorizer.follow, listener)
    try:
        if scope.subject is not None:
            tokens = []  # a user's own view holds no tokens
        snapshot = await run_in_threadpool(_snapshot, rt.authorizer, scope.rules(stored), tokens)
    except BaseException:
        rt.authorizer.unfollow(listener)
        raise

    async def lines() -> AsyncIterator[bytes]:
        try:
            yield json.dumps({"snapshot": snapshot}).encode() + b"\n"
            quiet_since = checked = loop.time()
            while True:
                event: PolicyEvent | None = None
                try:
                    event = await asyncio.wait_for(queue.get(), CREDENTIAL_CHECK_SECONDS)
                    quiet = False
                except TimeoutError:
                    quiet = True
                if loop.time() - checked >= CREDENTIAL_CHECK_SECONDS:
                    if not await holds():
                        return  # the follower connects again, and is answered 401 or 403
                    checked = loop.time()
                if quiet:
                    if loop.time() - quiet_since >= HEARTBEAT_SECONDS:
                        quiet_since = loop.time()
                        yield b'{"heartbeat": true}\n'
                    continue
                quiet_since = loop.time()
                seen = scope.event(event) if event is not None else PolicyEvent(reload=True)
                if seen is None:
                    continue
                line = event_to_json(seen)
                if not seen.reload:  # the revision the follower is at once it applied this
                    line["revision"] = rt.authorizer.revision
                yield json.dumps(line).encode() + b"\n"
                if seen.reload:  # the follower starts again from a new snapshot
                    return
        finally:
            rt.authorizer.unfollow(listener)

    return StreamingResponse(lines(), media_type="application/x-ndjson")


_NDJSON: dict[int | str, dict[str, Any]] = {200: {"content": {"application/x-ndjson": {}}}}


@router.get("/policy/watch", response_class=StreamingResponse, responses=_NDJSON)
async def watch_policy(_: PrincipalDep, rt: RuntimeDep, request: Request) -> StreamingResponse:
    """The whole policy, then each change (newline-delimited JSON). Needs `proxy`."""
    return await _watch(rt, _Scope(rt.authorizer, None), _holds(rt, request, "proxy"))


@router.get("/auth/me/policy", response_class=StreamingResponse, responses=_NDJSON)
async def watch_my_policy(p: PrincipalDep, rt: RuntimeDep, request: Request) -> StreamingResponse:
    """The rules that decide for the calling user, then their changes (for `mcplocal
    stdio`). Users only: an McpToken has no use for it."""
    if p.user is None:
        raise Forbidden("only a user follows its own policy; a token is followed by mcplocal")
    return await _watch(rt, _Scope(rt.authorizer, p.subject), _holds(rt, request, None))
