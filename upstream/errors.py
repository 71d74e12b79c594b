"""What reaching an upstream MCP server can raise.

* :class:`UpstreamError` - the upstream cannot serve this request (down, failed, slow,
  not found); the message names the server. mcpd answers it as a JSON-RPC error or an
  ``isError`` result, mcplocal likewise.
* :class:`SpecError` - a server's stored config cannot be used (e.g. a secretRef to a key
  that is gone).
* :class:`SandboxError` - a stdio server cannot be confined as the settings require
  (:mod:`upstream.sandbox`); it is not started.
* :class:`RelayError` - the fast lane could not relay a call: the upstream could not be
  reached, or answered something that is not MCP.

  * :class:`ConnectionLost` - the upstream's connection broke: its session must be opened
    again (the instance is dropped, as the SDK path does on a lost connection).

    * :class:`SessionGone` - the upstream no longer knows the session (404).

:func:`describe` gives an exception as the supervisor shows it (status, log lines).
"""

from __future__ import annotations


class UpstreamError(Exception):
    """The upstream cannot serve this request; the message names the server."""


class SpecError(Exception):
    """The stored config cannot be used (e.g. a secretRef to a key that is gone)."""


class SandboxError(Exception):
    """A stdio server cannot be confined as the settings require; it is not started."""


class RelayError(Exception):
    """The upstream could not be reached, or answered something that is not MCP."""


class ConnectionLost(RelayError):
    """The upstream cannot be reached, or its connection broke: its session must be opened
    again (the instance is dropped, as the SDK path does on a lost connection)."""


class SessionGone(ConnectionLost):
    """The upstream no longer knows the session (404)."""


def describe(exc: BaseException) -> str:
    """An exception as a status line: its message (or type), the members of a group."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions[:3])
    text = str(exc) or type(exc).__name__
    return text[:500]
