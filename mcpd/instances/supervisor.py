"""The supervisor: one upstream MCP session per server, kept alive, restarted, probed.

Each server in use has an :class:`Instance` whose *owner task* holds the transport and the
``ClientSession`` open (anyio wants a context left in the task that entered it). Callers
borrow the live session; when the upstream dies the owner notices (a stdio child's stdout
ends; an http server fails its probes or a call's connection), and starts it again with
exponential backoff. After ``max_crashes`` quick crashes in a row the instance is FAILED;
it is tried again every ``failed_retry_seconds`` (at once when its config changes).

Instances start on first use and are then kept warm. Nothing an upstream does - crash,
hang, flood stderr, send garbage - may break mcpd or another server: every error is caught
in the owner task and turned into status and a log line.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx2
import mcp_types as types
from anyio.abc import TaskGroup
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError

from mcpd.instances.logs import LogBuffer
from mcpd.instances.relay import SESSION_HEADER, VERSION_HEADER, Target, UpstreamHttp
from mcpd.instances.spec import SpecError, UpstreamSpec
from mcpd.instances.stdio import ChildProcess, child_environment, stdio_transport

log = logging.getLogger("mcpd.instances")

T = TypeVar("T")

STOPPED, PENDING, STARTING, RUNNING, FAILED = "STOPPED", "PENDING", "STARTING", "RUNNING", "FAILED"


@dataclass(frozen=True)
class SupervisorSettings:
    log_dir: Path | None = None
    start_timeout: float = 15.0  # spawn + initialize
    call_timeout: float = 300.0
    stop_grace: float = 5.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_crashes: int = 5
    stable_after: float = 60.0  # a run this long resets the crash count
    failed_retry_seconds: float = 30.0
    probe_interval: float = 30.0  # default liveness probe (tools/list) for RUNNING instances
    probe_timeout: float = 10.0
    probe_failures: int = 3  # consecutive failed probes that restart an instance
    tools_ttl: float = 60.0
    negative_ttl: float = 5.0


# what a broken connection to an upstream raises besides MCPError(CONNECTION_CLOSED)
_LOST = (OSError, httpx2.HTTPError, anyio.BrokenResourceError, anyio.ClosedResourceError)


class UpstreamError(Exception):
    """The upstream cannot serve this request; the message names the server."""


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions[:3])
    text = str(exc) or type(exc).__name__
    return text[:500]


_SSL: ssl.SSLContext | None = None


def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every upstream client: each would otherwise load the CA bundle
    again (about 1 MB apiece)."""
    global _SSL
    if _SSL is None:
        _SSL = httpx2.create_ssl_context()
    return _SSL


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Instance:
    def __init__(
        self,
        spec: UpstreamSpec,
        settings: SupervisorSettings,
        logbuf: LogBuffer,
        on_tools_changed: Callable[[str], None] | None = None,
    ):
        self.spec = spec
        self._on_tools_changed = on_tools_changed
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
        self.relay: Target | None = None  # while RUNNING over http: the fast lane (relay.py)
        self._last_failure = 0.0  # monotonic time of the last failed start or crash
        self._changed = anyio.Event()
        self._down = anyio.Event()  # set to make the owner drop the current session
        self._down_reason = "restart"  # why, as drop() said
        self._retry = anyio.Event()  # set to wake a FAILED (or backing-off) owner
        self._scope: anyio.CancelScope | None = None
        self._stopping = False
        self._tools: list[types.Tool] | None = None
        self._tools_at = 0.0
        self._tools_error: str | None = None
        self._tools_error_at = 0.0
        self._fetching: anyio.Event | None = None  # set when a tools/list in flight ends

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
                child: ChildProcess | None = None
                read: Any
                write: Any
                if self.spec.transport == "stdio":
                    read, write, started = await stack.enter_async_context(
                        stdio_transport(
                            list(self.spec.argv),
                            child_environment(self.spec.env),
                            self.log,
                            stop_grace=self.settings.stop_grace,
                        )
                    )
                    child, self.pid = started, started.process.pid
                else:

                    async def session_id(response: httpx2.Response) -> None:
                        if sid := response.headers.get(SESSION_HEADER):
                            upstream_session[:] = [sid]

                    upstream_session: list[str] = []
                    client = await stack.enter_async_context(
                        httpx2.AsyncClient(
                            headers=self.spec.headers,
                            verify=_ssl_context(),
                            timeout=httpx2.Timeout(30.0, read=self.settings.call_timeout),
                            event_hooks={"response": [session_id]},
                        )
                    )
                    read, write = await stack.enter_async_context(
                        streamable_http_client(self.spec.url, http_client=client)
                    )
                session = await stack.enter_async_context(
                    ClientSession(read, write, message_handler=self._on_message)
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
                    self._open_relay(upstream_session, init.protocol_version)
                self.started_at = _now()
                self.last_error = None
                self._set(RUNNING)
                return await self._watch(child)
        except Exception as exc:  # an upstream's failure, whatever it is, is its own
            return _describe(exc)

    def _open_relay(self, session_id: list[str], version: str) -> None:
        headers = {**self.spec.headers, VERSION_HEADER: version}
        if session_id:
            headers[SESSION_HEADER] = session_id[0]
        try:
            upstream = UpstreamHttp(self.spec.url, headers, _ssl_context())
            timeout = self.settings.call_timeout
            self.relay = Target(upstream, version, self.name, timeout, self.drop)
        except ValueError as exc:  # calls take the SDK path, which says what is wrong
            self.log.append(f"no fast lane: {exc}", source="mcpd")

    def _close_relay(self) -> None:
        if self.relay is not None:
            self.relay.upstream.close()
            self.relay = None

    async def _watch(self, child: ChildProcess | None) -> str:
        reason = "restart"
        async with anyio.create_task_group() as tg:

            async def until(event: anyio.Event, why: str) -> None:
                nonlocal reason
                await event.wait()
                reason = why
                tg.cancel_scope.cancel()

            tg.start_soon(until, self._down, "restart")
            tg.start_soon(self._probe_loop)
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
            self.log.append(f"transport error: {_describe(message)}", source="mcpd")

    # -- health ------------------------------------------------------------------------------

    async def _probe_loop(self) -> None:
        check = self.spec.health
        interval = check.interval_seconds if check else self.settings.probe_interval
        timeout = check.timeout_seconds if check else self.settings.probe_timeout
        failures = 0
        while True:
            await anyio.sleep(interval)
            try:
                with anyio.fail_after(timeout):
                    await self._probe()
            except Exception as exc:
                failures += 1
                self.health = "unhealthy"
                self.last_error = f"health probe failed: {_describe(exc) or 'timeout'}"
                self.log.append(self.last_error, source="mcpd")
                if failures >= self.settings.probe_failures:
                    self.drop(f"{failures} health probes failed in a row")
                    return
            else:
                failures = 0
                self.health = "healthy"
            self.last_probe_at = _now()

    async def _probe(self) -> None:
        session = self.session
        if session is None:
            raise UpstreamError("not connected")
        check = self.spec.health
        if check is None:  # the default liveness probe: tools/list through the real path
            await self.list_tools(refresh=True)
        elif check.tool:
            result = await session.send_request(
                types.CallToolRequest(params=types.CallToolRequestParams(name=check.tool)),
                types.CallToolResult,
            )
            if result.is_error:
                raise UpstreamError(f"health check tool `{check.tool}` returned an error")
        else:
            await session.send_ping()

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
                self.drop(f"connection lost: {_describe(e)}")
            raise UpstreamError(f"server `{self.name}`: {what} failed: {_describe(e)}") from None

    def invalidate_tools(self) -> None:
        self._tools = None
        self._tools_error = None

    async def list_tools(self, *, refresh: bool = False) -> list[types.Tool]:
        """The server's tools, cached ``tools_ttl`` (failures for ``negative_ttl``)."""
        now = time.monotonic()
        if not refresh:
            if self._tools is not None and now - self._tools_at < self.settings.tools_ttl:
                return self._tools
            if self._tools_error and now - self._tools_error_at < self.settings.negative_ttl:
                raise UpstreamError(self._tools_error)

        fetching = self._fetching
        if fetching is not None:  # one fetch at a time: the others wait for its answer
            await fetching.wait()
            if self._tools is not None:
                return self._tools
            if self._tools_error:
                raise UpstreamError(self._tools_error)

        async def fetch(session: ClientSession) -> list[types.Tool]:
            tools: list[types.Tool] = []
            cursor: str | None = None
            for _ in range(100):  # bounded, whatever the upstream's cursors do
                params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                page = await session.send_request(
                    types.ListToolsRequest(params=params), types.ListToolsResult
                )
                tools.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
            return tools

        self._fetching = done = anyio.Event()
        try:
            tools = await self.request("tools/list", fetch)
        except (UpstreamError, MCPError) as exc:
            self._tools_error = (
                str(exc)
                if isinstance(exc, UpstreamError)
                else (f"server `{self.name}`: tools/list failed: {exc.message}")
            )
            self._tools_error_at = time.monotonic()
            raise UpstreamError(self._tools_error) from None
        else:
            self._tools, self._tools_at, self._tools_error = tools, time.monotonic(), None
            return tools
        finally:
            self._fetching = None
            done.set()

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


class Supervisor:
    """Every instance of this mcpd process, by server name."""

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
            inst = Instance(spec, self.settings, self.logbuf(name), self.on_tools_changed)
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
