"""Prompts and resources: the union of the project's servers' that the caller may run,
prompts renamed like tools (``<server>__<prompt>``), resources under their own URIs."""

from __future__ import annotations

import mcp_types as types
from mcp.shared.exceptions import MCPError

from mcplocal.names import NameMap
from mcplocal.proxy.catalog import Caller, Catalog
from upstream.supervisor import UpstreamError


class Aggregate(Catalog):
    async def list_prompts(self, caller: Caller) -> tuple[list[types.Prompt], NameMap]:
        names = NameMap()
        prompts: list[types.Prompt] = []
        for server, inst in await self._instances(caller):
            if not self._may_run(caller, server):
                continue
            try:
                listed = await inst.request("prompts/list", lambda s: s.list_prompts())
            except (UpstreamError, MCPError):
                continue
            for p in listed.prompts:
                prompts.append(p.model_copy(update={"name": names.add(server, p.name)}))
        return prompts, names

    async def get_prompt(
        self, caller: Caller, exposed: str, arguments: dict[str, str] | None
    ) -> types.GetPromptResult:
        _, names = await self.list_prompts(caller)
        target = names.resolve(exposed)
        if target is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {exposed}")
        server, name = target
        inst = await self.supervisor(caller.project).instance(server)
        try:
            return await inst.request("prompts/get", lambda s: s.get_prompt(name, arguments))
        except UpstreamError as exc:
            raise MCPError(types.INTERNAL_ERROR, str(exc)) from None

    async def list_resources(self, caller: Caller) -> tuple[list[types.Resource], dict[str, str]]:
        owners: dict[str, str] = {}
        resources: list[types.Resource] = []
        for server, inst in await self._instances(caller):
            if not self._may_run(caller, server):
                continue
            try:
                listed = await inst.request("resources/list", lambda s: s.list_resources())
            except (UpstreamError, MCPError):
                continue
            for res in listed.resources:
                owners.setdefault(str(res.uri), server)
                resources.append(res)
        return resources, owners

    def _may_run(self, caller: Caller, server: str) -> bool:
        authorizer = self.policy.authorizer
        return authorizer is not None and bool(
            authorizer.decide(caller.subject, caller.project, "servers", server, "run")
        )
