"""A stdio MCP server as a child process: its own process group, stderr kept, stopped for good.

The SDK's ``stdio_client`` sends stderr to a file and gives no handle on the process; the
supervisor needs both (logs, pid, exit status), and must kill the whole process group even
when the direct child exits first and leaves grandchildren behind (``npx`` wrappers do).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
import anyio.to_thread
import mcp_types as types
from anyio.abc import Process
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage

from upstream.errors import RelayError
from upstream.logs import LogBuffer
from upstream.relay.pipe import StdioPipe
from upstream.sandbox import Sandbox, Spawn

MAX_MESSAGE_BYTES = 32 * 1024 * 1024
# The environment a child gets besides what its server declares: enough to find and run
# the command (PATH) and for tools that need a home or a locale. Nothing else of mcpd's.
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


def child_environment(declared: dict[str, str]) -> dict[str, str]:
    base = {k: v for k in BASE_ENV if (v := os.environ.get(k)) is not None}
    return base | declared


def confined(argv: list[str], env: dict[str, str], sandbox: Sandbox | None) -> Spawn:
    """How to exec ``argv``: as is, or inside ``sandbox`` (which may refuse: SandboxError)."""
    return Spawn(argv) if sandbox is None else sandbox.spawn(argv, env)


@dataclass
class ChildProcess:
    process: Process
    exited: anyio.Event = field(default_factory=anyio.Event)

    @property
    def pid(self) -> int:
        return self.process.pid


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a member changed user: still there
        return True
    return _live_member(pgid)


def _live_member(pgid: int) -> bool:
    """Whether a member of group ``pgid`` is more than a zombie (Linux's /proc; elsewhere
    assume so). A sandboxed child's PID-namespace init is left a zombie for the host's
    init to reap, which may take a second: it runs nothing."""
    try:
        entries = os.listdir("/proc")
    except OSError:  # pragma: no cover - no /proc
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def stop_process_group(child: ChildProcess, grace: float) -> None:
    """SIGTERM the child's whole process group, SIGKILL what is left after ``grace`` seconds.

    The group is the child's pid (it was started in a new session), so grandchildren that
    outlive the child are found and stopped too.
    """
    pgid = child.pid
    _signal_group(pgid, signal.SIGTERM)
    with anyio.move_on_after(grace):
        while child.process.returncode is None or _group_alive(pgid):
            await anyio.sleep(0.02)
    _signal_group(pgid, signal.SIGKILL)
    with anyio.move_on_after(2.0):
        while child.process.returncode is None:
            await anyio.sleep(0.02)


@contextlib.asynccontextmanager
async def stdio_transport(
    argv: list[str],
    env: dict[str, str],
    log: LogBuffer,
    *,
    stop_grace: float = 5.0,
    sandbox: Sandbox | None = None,
    pipe: StdioPipe | None = None,
) -> AsyncIterator[
    tuple[
        MemoryObjectReceiveStream[SessionMessage | Exception],
        MemoryObjectSendStream[SessionMessage],
        ChildProcess,
    ]
]:
    """Start ``argv`` and speak newline-delimited JSON-RPC over its stdin and stdout.

    ``child.exited`` is set when its stdout ends (it exited, or closed it). Leaving the
    context stops the whole process group. ``sandbox`` confines it (:mod:`upstream.sandbox`).
    ``pipe`` (the fast lane, :mod:`upstream.relay.pipe`) writes its own lines to the child's
    stdin and takes the lines of stdout that are its own before the streams see them.
    """
    spawn = await anyio.to_thread.run_sync(confined, argv, env, sandbox)  # reads files
    process = await anyio.open_process(
        spawn.argv,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    child = ChildProcess(process)
    log.append(f"started pid {process.pid}: {' '.join(argv)[:500]}{spawn.note}", source="mcpd")
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)

    async def stdout_reader() -> None:
        assert process.stdout is not None
        buffer = b""
        try:
            async with read_writer:
                async for chunk in process.stdout:
                    buffer += chunk
                    if len(buffer) > MAX_MESSAGE_BYTES and b"\n" not in buffer:
                        log.append("stdout line over 32 MiB: dropped", source="mcpd")
                        buffer = b""
                        continue
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if not line.strip() or (pipe is not None and pipe.route(line)):
                            continue
                        try:
                            message = types.jsonrpc_message_adapter.validate_json(
                                line, by_name=False
                            )
                        except ValueError:
                            # a server that prints to stdout breaks the protocol; say so
                            text = line[:200].decode("utf-8", "replace")
                            log.append(f"not JSON-RPC on stdout: {text}", source="mcpd")
                            continue
                        await read_writer.send(SessionMessage(message))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            pass
        finally:
            if pipe is not None:
                pipe.close()
            child.exited.set()

    async def stdin_writer() -> None:
        assert process.stdin is not None
        try:
            async with write_reader:
                async for message in write_reader:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await process.stdin.send(data.encode() + b"\n")
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            await read_writer.aclose()

    async def write_line(data: bytes) -> None:
        # (one write() call per line: lines from here and stdin_writer never interleave)
        assert process.stdin is not None
        try:
            await process.stdin.send(data)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
            raise RelayError(f"cannot write to the server's stdin: {exc!r}") from None

    if pipe is not None:
        pipe.attach(write_line)

    async def stderr_reader() -> None:
        assert process.stderr is not None
        buffer = b""
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            async for chunk in process.stderr:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    log.append(line.decode("utf-8", "replace"))
                if len(buffer) > 65536:  # no newline in sight: keep it as a line anyway
                    log.append(buffer.decode("utf-8", "replace"))
                    buffer = b""
        if buffer:
            log.append(buffer.decode("utf-8", "replace"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(stdout_reader)
        tg.start_soon(stdin_writer)
        tg.start_soon(stderr_reader)
        try:
            yield read_stream, write_stream, child
        finally:
            with anyio.CancelScope(shield=True):
                await write_stream.aclose()
                await stop_process_group(child, stop_grace)
                code = process.returncode
                log.append(f"pid {process.pid} stopped (exit status {code})", source="mcpd")
                for stream in (process.stdin, process.stdout, process.stderr):
                    if stream is not None:
                        with contextlib.suppress(Exception):
                            await stream.aclose()
                await read_stream.aclose()
            tg.cancel_scope.cancel()
