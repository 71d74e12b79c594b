"""The catalog: what a caller may see - the project's servers, an instance of each, the tools.

A project's servers are mcpd's to say (``GET /api/v1/projects/P``, kept ``project_ttl``); each
project has its own supervisor (upstream/supervisor), whose upstreams are mcpd's
per-server endpoints (``/api/v1/servers/{name}/mcp?project=P``). A caller's ``tools/list``
is the union of its servers' tools it may run, renamed ``<server>__<tool>`` and cached
until anything that decides it changes (``tools_changed``) or ``listing_ttl`` passes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Self

import anyio
import mcp_types as types
from anyio.abc import TaskGroup

from authz import Decision
from client import AsyncMcpdClient, BearerAuth, ClientError, Denied, NotFound
from client.errors import transport_error
from mcplocal.audit import AuditReporter
from mcplocal.names import NameMap
from mcplocal.pipeline import Pipeline, ProxyModel, page_tool
from mcplocal.policy import PolicyFollower
from upstream.relay import AUDITED_HEADER
from upstream.spec import LiveAuth, UpstreamSpec
from upstream.supervisor import Instance, Supervisor, SupervisorSettings, UpstreamError

log = logging.getLogger("mcplocal.proxy")


@dataclass(frozen=True)
class Caller:
    """Who is asking, as the enforcer and the audit log name them."""

    subject: str  # User:<name> or McpToken:<sha>
    project: str
    user: str | None = None
    token_name: str | None = None
    token_sha: str | None = None


@dataclass
class ProjectInfo:
    servers: list[str]
    model: ProxyModel
    fetched: float


class Catalog:
    """The proxy's view of projects, their supervisors and listings (state: :class:`Proxy`)."""

    mcpd_url: str
    _auth: BearerAuth  # mcplocal's own credential for mcpd (the client's auth flow)
    policy: PolicyFollower
    pipeline: Pipeline
    audit: AuditReporter
    upstream_settings: SupervisorSettings
    project_ttl: float
    _project_fetches: dict[str, asyncio.Future[ProjectInfo]]  # project -> its fetch in flight
    listing_ttl: float
    default_model: ProxyModel
    _projects: dict[str, ProjectInfo]
    _supervisors: dict[str, Supervisor]
    _tg: TaskGroup | None
    _mcpd: AsyncMcpdClient | None  # mcplocal's client of mcpd's API, while running
    # (subject, project) -> (generation, when, tools): what each caller was shown
    _listings: dict[tuple[str, str], tuple[int, float, list[types.Tool]]]
    _generation: int  # bumped by anything that may change what a caller sees
    _names: dict[str, NameMap]  # project -> every exposed name it has had

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Self]:
        async with (
            AsyncMcpdClient(self.mcpd_url, self._auth, timeout=15.0) as mcpd,
            anyio.create_task_group() as tg,
        ):
            self._mcpd, self._tg = mcpd, tg
            try:
                yield self
            finally:
                with anyio.CancelScope(shield=True):
                    for sup in list(self._supervisors.values()):
                        await sup.stop_all()
                tg.cancel_scope.cancel()
                self._tg = None

    def supervisor(self, project: str) -> Supervisor:
        sup = self._supervisors.get(project)
        if sup is None:
            if self._tg is None or self._mcpd is None:
                raise UpstreamError("mcplocal is shutting down")
            mcpd, auth = self._mcpd, self._auth

            async def load(name: str) -> UpstreamSpec:
                # the session's requests carry the credential as it is renewed (the SDK's
                # client through the auth flow, the fast lane through its header now)
                url = mcpd.upstream_url(name, project)
                if auth.stale():
                    await mcpd.fresh_headers()
                live = LiveAuth(auth, auth.headers, mcpd.renew)
                audited = {AUDITED_HEADER: "mcplocal"}  # mcplocal audits its calls (calls.py)
                return UpstreamSpec(name, "http", url=url, headers=audited, auth=live)

            sup = Supervisor(self.upstream_settings, load)
            sup.on_tools_changed = lambda _name: self.tools_changed(project)
            sup.on_notification = lambda server, method, params: self.upstream_notified(
                project, server, method, params
            )
            self._supervisors[project] = sup
            started = anyio.Event()

            async def hold(s: Supervisor = sup) -> None:
                async with s.running():
                    started.set()
                    await anyio.sleep_forever()

            self._tg.start_soon(hold)
        return sup

    async def project(self, name: str) -> ProjectInfo:
        """The project's servers and proxy model, as mcpd said within ``project_ttl``.
        Calls that find it stale together wait for one fetch (not one each)."""
        info = self._projects.get(name)
        if info is not None and time.monotonic() - info.fetched < self.project_ttl:
            return info
        fetch = self._project_fetches.get(name)
        if fetch is None:
            fetch = asyncio.ensure_future(self._fetch_project(name, info))
            self._project_fetches[name] = fetch
            fetch.add_done_callback(lambda f: self._fetched(name, f))
        return await asyncio.shield(fetch)  # (a waiter cancelled leaves it to the others)

    def _fetched(self, name: str, fetch: asyncio.Future[ProjectInfo]) -> None:
        self._project_fetches.pop(name, None)
        if not fetch.cancelled():
            fetch.exception()  # (seen, should every waiter have gone away)

    async def _fetch_project(self, name: str, info: ProjectInfo | None) -> ProjectInfo:
        assert self._mcpd is not None
        try:
            body = await self._mcpd.project(name)
            model = ProxyModel.from_options(
                body.get("proxyModel") or "passthrough", body.get("proxyOptions") or {}
            )
            info = ProjectInfo(list(body.get("servers") or []), model, time.monotonic())
        except (Denied, NotFound):
            raise UpstreamError(
                f"project `{name}` not found, or not visible to mcplocal's identity "
                f"(it needs `role:view,resource:projects,name:{name}`)"
            ) from None
        except (ClientError, ValueError, KeyError) as exc:
            shown = transport_error(exc)
            if info is not None:  # mcpd away for a moment: keep serving what we knew
                log.warning("project %s: keeping the last known servers: %s", name, shown)
                return info
            raise UpstreamError(f"project `{name}`: cannot read it from mcpd: {shown}") from None
        if self._projects.get(name) is not None and self._projects[name].servers != info.servers:
            self._projects[name] = info
            self.tools_changed(name)
        self._projects[name] = info
        return info

    def allowed(self, caller: Caller, server: str, tool: str) -> bool:
        return self.decide(caller, server, tool).allowed

    def decide(self, caller: Caller, server: str, tool: str) -> Decision:
        authorizer = self.policy.authorizer
        if authorizer is None:
            return Decision(False, "no policy from mcpd yet")
        return authorizer.decide(
            caller.subject, caller.project, "tools", f"{server}__{tool}", "run"
        )

    def upstream_notified(
        self, project: str, server: str, method: str, params: dict[str, Any] | None
    ) -> None:
        """An upstream's notification not tied to a request (resources.py delivers them)."""

    async def _instances(self, caller: Caller) -> list[tuple[str, Instance]]:
        info = await self.project(caller.project)
        sup = self.supervisor(caller.project)
        out = []
        for server in info.servers:
            try:
                out.append((server, await sup.instance(server)))
            except UpstreamError as exc:
                log.warning("%s", exc)
        return out

    async def list_tools(self, caller: Caller) -> list[types.Tool]:
        """The caller's tools: from the listing cache while nothing that decides it changed
        (policy, an upstream's tools, the project's servers) and for at most ``listing_ttl``."""
        key = (caller.subject, caller.project)
        hit = self._listings.get(key)
        if (
            hit is not None
            and hit[0] == self._generation
            and time.monotonic() - hit[1] < self.listing_ttl
        ):
            return hit[2]
        generation = self._generation
        instances = await self._instances(caller)
        listed: dict[str, list[types.Tool]] = {}

        async def one(server: str, inst: Instance) -> None:
            try:
                listed[server] = await inst.list_tools()
            except UpstreamError as exc:  # a dead upstream hides only its own tools
                log.info("%s", exc)

        async with anyio.create_task_group() as tg:
            for server, inst in instances:
                tg.start_soon(one, server, inst)
        names = self._names.setdefault(caller.project, NameMap())
        tools: list[types.Tool] = []
        for server, _ in instances:
            for tool in listed.get(server, []):
                exposed = names.add(server, tool.name)
                if self.allowed(caller, server, tool.name):
                    tools.append(tool.model_copy(update={"name": exposed}))
        info = await self.project(caller.project)
        if info.model.name != "passthrough":
            tools.append(page_tool())
        self._listings[key] = (generation, time.monotonic(), tools)
        return tools

    async def resolve(self, caller: Caller, exposed: str) -> tuple[str, str] | None:
        names = self._names.get(caller.project)
        target = names.resolve(exposed) if names is not None else None
        if target is None:  # not listed yet (or a new tool): list, then look again
            await self.list_tools(caller)
            target = self._names[caller.project].resolve(exposed)
        return target

    def tools_changed(self, project: str | None = None) -> None:
        """Something that decides the visible tools changed (an upstream's list, a policy
        change, a project's servers): every listing is stale (notify.py tells sessions)."""
        self._generation += 1
