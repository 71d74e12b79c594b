"""Prompts and resources: the union of the project's servers' that the caller may run,
prompts renamed like tools (``<server>__<prompt>``), resources under their own URIs.

Each is authorized like a tool, one by one: ``run`` on ``prompts/<server>__<prompt>`` or
``resources/<server>__<uri>`` (a line on the server covers them all). One the caller may
not run is left out of listings and answered like one that does not exist; the refusal
is audited like a tool's. (Resource templates, completion of their variables and logging
are offered by server: to callers with ``run`` on the server.)"""

from __future__ import annotations

import mcp_types as types
from mcp.shared.exceptions import MCPError

from mcplocal.audit import CallRecord
from mcplocal.names import NameMap
from mcplocal.proxy.catalog import Caller, Catalog, log
from upstream.supervisor import UpstreamError


class Aggregate(Catalog):
    async def list_prompts(self, caller: Caller) -> tuple[list[types.Prompt], NameMap]:
        """The prompts the caller may run, and the names of all the servers' prompts (so that
        a prompt's exposed name does not depend on what the caller may see)."""
        names = NameMap()
        prompts: list[types.Prompt] = []
        for server, inst in await self._instances(caller):
            try:
                listed = await inst.request("prompts/list", lambda s: s.list_prompts())
            except (UpstreamError, MCPError):
                continue
            for p in listed.prompts:
                exposed = names.add(server, p.name)
                if self.may_use(caller, "prompts", server, p.name):
                    prompts.append(p.model_copy(update={"name": exposed}))
        return prompts, names

    async def prompt_target(self, caller: Caller, exposed: str, method: str) -> tuple[str, str]:
        """The (server, prompt) of an exposed prompt name the caller may run; else the
        error of an unknown prompt (a refusal audited)."""
        _, names = await self.list_prompts(caller)
        target = names.resolve(exposed)
        if target is not None and not self.may_use(caller, "prompts", *target):
            await self.refused(caller, "prompts", *target, method)
            target = None
        if target is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {exposed}")
        return target

    async def get_prompt(
        self, caller: Caller, exposed: str, arguments: dict[str, str] | None
    ) -> types.GetPromptResult:
        server, name = await self.prompt_target(caller, exposed, "prompts/get")
        inst = await self.supervisor(caller.project).instance(server)
        try:
            return await inst.request("prompts/get", lambda s: s.get_prompt(name, arguments))
        except UpstreamError as exc:
            raise MCPError(types.INTERNAL_ERROR, str(exc)) from None

    async def list_resources(self, caller: Caller) -> tuple[list[types.Resource], dict[str, str]]:
        """The resources the caller may run, and the server of every URI listed."""
        owners: dict[str, str] = {}
        resources: list[types.Resource] = []
        for server, inst in await self._instances(caller):
            try:
                listed = await inst.request("resources/list", lambda s: s.list_resources())
            except (UpstreamError, MCPError):
                continue
            for res in listed.resources:
                owners.setdefault(str(res.uri), server)
                if self.may_use(caller, "resources", server, str(res.uri)):
                    resources.append(res)
        return resources, owners

    def _may_run(self, caller: Caller, server: str) -> bool:
        authorizer = self.policy.authorizer
        return authorizer is not None and bool(
            authorizer.decide(caller.subject, caller.project, "servers", server, "run")
        )

    def may_use(self, caller: Caller, kind: str, server: str, part: str) -> bool:
        """``run`` on the server's prompt or resource ``part`` (``kind``)."""
        authorizer = self.policy.authorizer
        return authorizer is not None and bool(
            authorizer.decide(caller.subject, caller.project, kind, f"{server}__{part}", "run")
        )

    async def refused(self, caller: Caller, kind: str, server: str, part: str, method: str) -> None:
        """Audit a refused prompt or resource, as a refused tool call is."""
        authorizer = self.policy.authorizer
        reason = (
            authorizer.decide(caller.subject, caller.project, kind, f"{server}__{part}", "run")
            if authorizer is not None
            else None
        )
        record = CallRecord(
            user=caller.user,
            token_name=caller.token_name,
            token_sha=caller.token_sha,
            server=server,
            tool=part[:255],
            project=caller.project,
            outcome="deny",
            duration_ms=0.0,
            error=f"{method} refused",
            reason=reason.reason if reason is not None else "no policy from mcpd yet",
            policy_revision=self.policy.revision,
            kind=kind,
        )
        try:
            await self.audit.report(record)
        except Exception as exc:  # (refused either way)
            log.error("the audit record of a refused %s is lost: %s", method, exc)
