"""An instance: one upstream MCP session, kept alive and restarted (its lifecycle).

Each server in use has an :class:`Instance` whose *owner task* (:meth:`Instance.run`) holds
the transport and the ``ClientSession`` open (anyio wants a context left in the task that
entered it). Callers borrow the live session; when the upstream dies the owner notices (a
stdio child's stdout ends; an http server fails its probes or a call's connection), and
starts it again with exponential backoff. After ``max_crashes`` quick crashes in a row the
instance is FAILED; it is tried again every ``failed_retry_seconds`` (at once when its
config changes).

Nothing an upstream does - crash, hang, flood stderr, send garbage - may break the process
or another server: every error is caught in the owner task and turned into status and a
log line. Its probes are :mod:`.health`'s, its tools cache :mod:`.tools`'.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import anyio
import httpx2
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel

from upstream.errors import UpstreamError, describe
from upstream.logs import LogBuffer
from upstream.relay import StdioPipe, Target
from upstream.spec import UpstreamSpec
from upstream.stdio import ChildProcess
from upstream.supervisor.connect import open_relay, open_transport
from upstream.supervisor.health import now, probe_loop
from upstream.supervisor.settings import SupervisorSettings
from upstream.supervisor.tools import ToolsCache

T = TypeVar("T")

STOPPED, PENDING, STARTING, RUNNING, FAILED = "STOPPED", "PENDING", "STARTING", "RUNNING", "FAILED"

# what a broken connection to an upstream raises besides MCPError(CONNECTION_CLOSED)
_LOST = (OSError, httpx2.HTTPError, anyio.BrokenResourceError, anyio.ClosedResourceError)


async def _not_here(context: Any, params: Any) -> types.ErrorData:
    return types.ErrorData(
        code=types.METHOD_NOT_FOUND,
        message="the proxy passes this request to its caller only on a relayed tools/call",
    )


async def _no_roots(context: Any) -> types.ErrorData:
    return await _not_here(context, None)


class Instance:
    def __init__(
        self,
        spec: UpstreamSpec,
        settings: SupervisorSettings,
        logbuf: LogBuffer,
        on_tools_changed: Callable[[str], None] | None = None,
        on_notification: Callable[[str, str, dict[str, Any] | None], None] | None = None,
    ):
        self.spec = spec
        self._on_tools_changed = on_tools_changed
        self._on_notification = on_notification
        self.settings = settings
        self.log = logbuf
        self.status = STOPPED
        self.health = "unknown"
        self.restarts = 0
        self.started_at: str | None = None
        self.last_error: str | None = None
        self.last_probe_at: str | None = None
        self.pid: int | None = None
        self.session: ClientSession | None = None
        self.relay: Target | None = None  # while RUNNING: the fast lane (upstream/relay)
        self._pipe: StdioPipe | None = None  # a stdio child's, while it runs
        self._asking: set[str] = set()  # its tools that ask the caller (StdioPipe.asking)
        self._last_failure = 0.0  # monotonic time of the last failed start or crash
        self._changed = anyio.Event()
        self._down = anyio.Event()  # set to make the owner drop the current session
        self._down_reason = "restart"  # why, as drop() said
        self._retry = anyio.Event()  # set to wake a FAILED (or backing-off) owner
        self._scope: anyio.CancelScope | None = None
        self._stopping = False
        self.tools = ToolsCache(settings)

    @property
    def name(self) -> str:
        return self.spec.name

    def status_dict(self) -> dict[str, Any]:
        return {
            "server": self.name,
            "transport": self.spec.transport,
            "status": self.status,
            "health": self.health,
            "restarts": self.restarts,
            "startedAt": self.started_at,
            "lastError": self.last_error,
            "lastProbeAt": self.last_probe_at,
            "pid": self.pid,
            "logLinesDropped": self.log.dropped,
        }

    def _set(self, status: str) -> None:
        if status != self.status:
            self.log.append(f"status {self.status} -> {status}", source="mcpd")
            if RUNNING in (status, self.status):  # its tools appear or go away
                self._tools_changed()
        self.status = status
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    # -- the owner task ------------------------------------------------------------------------

    async def run(self) -> None:
        crashes = 0
        with anyio.CancelScope() as scope:
            self._scope = scope
            while not self.stopping():
                self._down, self._down_reason = anyio.Event(), "restart"
                self._set(STARTING)
                began = time.monotonic()
                reason = await self._serve_once()
                self.session, self.pid, self.health = None, None, "unknown"
                self._close_relay()
                self.invalidate_tools()
                if self.stopping():
                    break
                if reason == "restart":  # asked for (config changed): not a crash
                    crashes = 0
                    continue
                self._last_failure = time.monotonic()
                self.last_error = reason
                self.log.append(f"down: {reason}", source="mcpd")
                crashes = 0 if time.monotonic() - began >= self.settings.stable_after else crashes
                crashes += 1
                self.restarts += 1
                if crashes >= self.settings.max_crashes:
                    # FAILED: tried again every failed_retry_seconds (sooner when used after
                    # that long, or when its config changes); one more failure, FAILED again
                    self._set(FAILED)
                    self._retry = anyio.Event()
                    with anyio.move_on_after(self.settings.failed_retry_seconds):
                        await self._retry.wait()
                    crashes = self.settings.max_crashes - 1
                    continue
                self._set(PENDING)
                delay = min(
                    self.settings.backoff_max, self.settings.backoff_base * 2 ** (crashes - 1)
                )
                self._retry = anyio.Event()
                with anyio.move_on_after(delay):
                    await self._retry.wait()
        self.session = None
        self._set(STOPPED)

    async def _serve_once(self) -> str:
        """Connect, serve until the upstream goes down; say why it went down."""
        try:
            async with AsyncExitStack() as stack:
                upstream_session: list[str] = []
                pipe = StdioPipe(self._asking) if self.spec.transport == "stdio" else None
                read, write, child = await open_transport(
                    stack, self.spec, self.settings, self.log, upstream_session, pipe
                )
                if child is not None:
                    self.pid = child.process.pid
                session = await stack.enter_async_context(
                    ClientSession(
                        read,
                        write,
                        message_handler=self._on_message,
                        # declared, so an upstream may ask them: on a relayed call they reach
                        # the caller (upstream/relay); here, on the SDK path, they are refused
                        sampling_callback=_not_here,
                        elicitation_callback=_not_here,
                        list_roots_callback=_no_roots,
                    )
                )
                # (only here: a task group entered inside a timeout scope may not outlive it)
                try:
                    with anyio.fail_after(self.settings.start_timeout):
                        init = await session.initialize()
                except TimeoutError:
                    raise UpstreamError(
                        f"no answer to initialize within {self.settings.start_timeout:g}s"
                    ) from None
                info = init.server_info
                self.log.append(
                    f"connected: {info.name} {info.version} (protocol {init.protocol_version})",
                    source="mcpd",
                )
                self.session = session
                if self.spec.transport == "http":
                    self.relay = open_relay(
                        self.spec,
                        self.settings,
                        self.log,
                        upstream_session,
                        init.protocol_version,
                        self.drop,
                    )
                elif pipe is not None:
                    self._pipe = pipe
                    timeout = self.settings.call_timeout
                    self.relay = Target(pipe, init.protocol_version, self.name, timeout, self.drop)
                self.started_at = now()
                self.last_error = None
                self._set(RUNNING)
                return await self._watch(child)
        except Exception as exc:  # an upstream's failure, whatever it is, is its own
            return describe(exc)

    def _close_relay(self) -> None:
        if self.relay is not None:
            self.relay.upstream.close()
            self.relay = None
        self._pipe = None

    async def _watch(self, child: ChildProcess | None) -> str:
        reason = "restart"
        async with anyio.create_task_group() as tg:

            async def until(event: anyio.Event, why: str) -> None:
                nonlocal reason
                await event.wait()
                reason = why
                tg.cancel_scope.cancel()

            tg.start_soon(until, self._down, "restart")
            tg.start_soon(probe_loop, self)
            if child is not None:
                tg.start_soon(until, child.exited, "exited")
        if reason == "exited" and child is not None:
            with anyio.move_on_after(1.0):
                while child.process.returncode is None:
                    await anyio.sleep(0.01)
            return f"process exited (status {child.process.returncode})"
        return self._down_reason if reason == "restart" else reason

    def stopping(self) -> bool:
        return self._stopping

    def live(self) -> ClientSession | None:
        return self.session

    def drop(self, reason: str = "restart") -> None:
        """Make the owner leave the current session (and start again unless stopping)."""
        self._down_reason = reason
        self._down.set()
        self._retry.set()

    async def stop(self) -> None:
        self._stopping = True
        self.drop()
        # a child gets its SIGTERM grace; an http session only a moment to say goodbye
        # (its GET stream may never end by itself)
        wait = self.settings.stop_grace + 5.0 if self.spec.transport == "stdio" else 2.0
        with anyio.move_on_after(wait):
            while self.status != STOPPED and self._scope is not None:
                await self._wait_change()
        if self._scope is not None and self.status != STOPPED:
            self._scope.cancel()

    def _tools_changed(self) -> None:
        self.invalidate_tools()
        if self._on_tools_changed is not None:
            self._on_tools_changed(self.name)

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self._tools_changed()
        elif isinstance(message, Exception):
            self.log.append(f"transport error: {describe(message)}", source="mcpd")
        elif self._on_notification is not None and isinstance(message, BaseModel):
            # resources updated, log messages, other lists changed: for the callers to hear
            wire = message.model_dump(by_alias=True, mode="json", exclude_none=True)
            method = wire.get("method")
            if isinstance(method, str):
                self._on_notification(self.name, method, wire.get("params"))

    # -- what callers use --------------------------------------------------------------------

    async def _wait_change(self) -> None:
        await self._changed.wait()

    async def ready_session(self) -> ClientSession:
        """The live session, waiting for a start in progress; fails fast on a recent failure."""
        if self.session is not None:
            return self.session
        since = time.monotonic() - self._last_failure
        if self._last_failure and since < self.settings.negative_ttl:
            # a dead upstream stalls only the first call: the next ones fail at once
            raise UpstreamError(f"server `{self.name}` is unavailable: {self.last_error}")
        if self.status == FAILED and since < self.settings.failed_retry_seconds:
            raise UpstreamError(f"server `{self.name}` has failed: {self.last_error}")
        if self.status in (PENDING, FAILED):
            self._retry.set()  # someone wants it: try now, not at the end of the backoff
        with anyio.move_on_after(self.settings.start_timeout + 1.0):
            while self.session is None:
                await self._wait_change()
                if self.status in (FAILED, PENDING, STOPPED):
                    break
        session = self.live()
        if session is None:
            raise UpstreamError(
                f"server `{self.name}` is unavailable: {self.last_error or 'not started'}"
            )
        return session

    async def request(self, what: str, send: Callable[[ClientSession], Awaitable[T]]) -> T:
        """Run ``send`` on the live session; connection failures become UpstreamError."""
        session = await self.ready_session()
        pipe = self._pipe  # (told, so that it knows whose the child's own requests are)
        if pipe is not None:
            pipe.others += 1
        try:
            with anyio.fail_after(self.settings.call_timeout):
                return await send(session)
        except TimeoutError:
            raise UpstreamError(
                f"server `{self.name}` did not answer {what} within {self.settings.call_timeout:g}s"
            ) from None
        except MCPError as exc:
            if exc.code != types.CONNECTION_CLOSED:
                raise  # the upstream's own JSON-RPC error: the caller sees it as is
            if self.spec.transport == "http":
                self.drop(f"connection lost: {exc.message}")
            raise UpstreamError(f"server `{self.name}`: connection lost during {what}") from None
        except _LOST as e:
            if self.spec.transport == "http":
                self.drop(f"connection lost: {describe(e)}")
            raise UpstreamError(f"server `{self.name}`: {what} failed: {describe(e)}") from None
        finally:
            if pipe is not None:
                pipe.others -= 1

    def invalidate_tools(self) -> None:
        self.tools.invalidate()

    async def list_tools(self, *, refresh: bool = False) -> list[types.Tool]:
        """The server's tools, cached ``tools_ttl`` (failures for ``negative_ttl``)."""
        return await self.tools.get(self, refresh=refresh)

    async def call_tool(
        self,
        tool: str,
        arguments: dict[str, Any] | None,
        progress: ProgressFnT | None = None,
    ) -> types.CallToolResult:
        request = types.CallToolRequest(
            params=types.CallToolRequestParams(name=tool, arguments=arguments)
        )
        return await self.request(
            f"tools/call {tool}",
            lambda s: s.send_request(request, types.CallToolResult, progress_callback=progress),
        )
