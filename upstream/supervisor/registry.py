"""The registry: every instance of this process, by server name (:class:`Supervisor`).

Instances start on first use and are then kept warm; ``load`` gives a server's current
config (mcpd reads its database, mcplocal names mcpd's per-server endpoint). A changed
config restarts the instance, a server gone stops it; configs are re-read every
``probe_interval`` too, so changes made through another mcpd replica arrive.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskGroup

from upstream.errors import SpecError, UpstreamError
from upstream.logs import LogBuffer
from upstream.spec import UpstreamSpec
from upstream.supervisor.instance import Instance
from upstream.supervisor.settings import SupervisorSettings

log = logging.getLogger("upstream.supervisor")


class Supervisor:
    """Every instance of this process (mcpd's, or one project's in mcplocal), by server name."""

    def __init__(
        self,
        settings: SupervisorSettings,
        load: Callable[[str], Awaitable[UpstreamSpec | None]],
    ) -> None:
        self.settings = settings
        self._load = load  # the server's current config (from the database), or None
        self._instances: dict[str, Instance] = {}
        self._logs: dict[str, LogBuffer] = {}
        self._tg: TaskGroup | None = None
        self._lock = anyio.Lock()
        # called with a server's name when its tools may have changed (listChanged, restart)
        self.on_tools_changed: Callable[[str], None] | None = None
        # called with (server, method, params) for the upstream's other notifications
        # (resources updated, log messages, prompts or resources changed)
        self.on_notification: Callable[[str, str, dict[str, Any] | None], None] | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Supervisor]:
        """Hold the owner tasks; on exit every instance is stopped (children included)."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._refresh_loop)
            try:
                yield self
            finally:
                with anyio.CancelScope(shield=True):
                    await self.stop_all()
                self._tg = None
                tg.cancel_scope.cancel()

    def spawn(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Run ``fn(*args)`` in the background, while the supervisor runs (else not at all)."""
        if self._tg is not None:
            self._tg.start_soon(fn, *args)

    def _notified(self, server: str, method: str, params: dict[str, Any] | None) -> None:
        if self.on_notification is not None:
            self.on_notification(server, method, params)

    def logbuf(self, name: str) -> LogBuffer:
        if name not in self._logs:
            self._logs[name] = LogBuffer(name, self.settings.log_dir)
        return self._logs[name]

    def get(self, name: str) -> Instance | None:
        return self._instances.get(name)

    def instances(self) -> list[Instance]:
        return [self._instances[n] for n in sorted(self._instances)]

    async def instance(self, name: str) -> Instance:
        """The running (or starting) instance of server ``name``; started on first use."""
        inst = self._instances.get(name)
        if inst is not None:
            return inst
        async with self._lock:
            inst = self._instances.get(name)
            if inst is not None:
                return inst
            if self._tg is None:
                raise UpstreamError("mcpd is shutting down")
            try:
                spec = await self._load(name)
            except SpecError as exc:
                raise UpstreamError(f"server `{name}`: {exc}") from None
            if spec is None:
                raise UpstreamError(f"server `{name}` not found")
            inst = Instance(
                spec, self.settings, self.logbuf(name), self.on_tools_changed, self._notified
            )
            self._instances[name] = inst
            self._tg.start_soon(inst.run)
            return inst

    async def stop(self, name: str) -> None:
        inst = self._instances.pop(name, None)
        if inst is not None:
            await inst.stop()

    async def refresh(self, name: str) -> None:
        """The server's config may have changed: restart its instance if it did, stop it if the
        server is gone."""
        inst = self._instances.get(name)
        if inst is None:
            return
        try:
            spec = await self._load(name)
        except SpecError as exc:
            inst.last_error = str(exc)
            return
        if spec is None:
            await self.stop(name)
        elif spec.fingerprint != inst.spec.fingerprint:
            inst.log.append("config changed: restarting", source="mcpd")
            inst.spec = spec
            inst.drop()

    async def refresh_all(self) -> None:
        for name in list(self._instances):
            await self.refresh(name)

    async def _refresh_loop(self) -> None:
        """Config changes made through another replica reach this one's instances too."""
        while True:
            await anyio.sleep(self.settings.probe_interval)
            try:
                await self.refresh_all()
            except Exception:  # the database may be away for a moment; try again later
                log.warning("could not re-read server configs", exc_info=True)

    async def stop_all(self) -> None:
        instances = list(self._instances.values())
        self._instances.clear()
        async with anyio.create_task_group() as tg:
            for inst in instances:
                tg.start_soon(inst.stop)
        for buf in self._logs.values():
            buf.close()
