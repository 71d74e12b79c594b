"""``mcplocal stdio``: the proxy for one logged-in user, over stdin and stdout.

The user's own ``mcpctl login`` session is the credential everywhere: mcpd's per-server
endpoints check it, and the rules that decide for this user come from
``/api/v1/auth/me/policy`` into this process's copy of the enforcer, so the user is
authorized exactly as HTTP callers are. Calls are reported to ``/api/v1/auth/me/calls``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server

from client import (
    API,
    MY_CALLS,
    MY_POLICY,
    AsyncMcpdClient,
    BearerAuth,
    NotAuthenticated,
    Unreachable,
)
from mcplocal.audit import AuditReporter, spool_dir_for
from mcplocal.cache import FileCache
from mcplocal.pipeline import Pipeline
from mcplocal.policy import PolicyFollower
from mcplocal.proxy import Caller, Proxy
from mcplocal.settings import Settings as SpoolSettings


async def run_stdio(
    mcpd_url: str, token: str, project: str, cache_dir: Path, spool: SpoolSettings
) -> None:
    async with httpx2.AsyncClient(timeout=60.0) as http:
        auth = BearerAuth(token)  # the user's bearer, for every call to mcpd
        mcpd = AsyncMcpdClient(mcpd_url, auth, http=http)
        try:
            me = await mcpd.me()
        except Unreachable as exc:
            raise RuntimeError(f"cannot reach mcpd at {mcpd_url}: {exc.__cause__}") from None
        except NotAuthenticated:
            raise RuntimeError("the mcpctl session has expired: run `mcpctl login`") from None
        user = me.get("user")
        if not user:
            raise RuntimeError("mcplocal stdio runs with a user's login, not a token")
        caller = Caller(f"User:{user}", project, user=user)
        policy = PolicyFollower(mcpd_url, auth, path=API + MY_POLICY)
        path = API + MY_CALLS
        audit = AuditReporter(
            mcpd_url,
            auth,
            spool_dir_for(spool.audit_spool_dir, mcpd_url, path, user),
            path=path,
            max_bytes=spool.audit_spool_max_bytes,
            fsync=spool.audit_spool_fsync,
            linger=spool.audit_delivery_linger,
        )
        proxy = Proxy(mcpd_url, auth, policy, Pipeline(FileCache(cache_dir), http), audit)
        policy.on_change = lambda: proxy.tools_changed(None)

        def caller_of(ctx: ServerRequestContext[Any]) -> Caller:
            return caller

        server = proxy.build_server(caller_of)
        async with anyio.create_task_group() as tg:
            tg.start_soon(policy.run)
            tg.start_soon(audit.run)
            async with proxy.running():
                if not await policy.wait_ready(15.0):
                    raise RuntimeError(f"no policy from mcpd: {policy.last_error}")
                await proxy.project(project)  # fail now, clearly, for a project we cannot read
                async with stdio_server() as (read, write):
                    await server.run(read, write, server.create_initialization_options())
            with anyio.CancelScope(shield=True), anyio.move_on_after(5.0):
                await audit.flush_quietly(mcpd)
            tg.cancel_scope.cancel()
        audit.spool.close()
