"""Reaching MCP servers, shared by mcpd and mcplocal.

A foundation: it imports at most :mod:`authz`, never mcpd, mcplocal or the CLI.

* :mod:`upstream.spec` - :class:`UpstreamSpec`, what it takes to reach one server (mcpd
  reads its own from its database, mcplocal builds them for mcpd's endpoints);
* :mod:`upstream.supervisor` - one kept-alive session per server: lifecycle, probes,
  tools cache, the registry (:class:`Supervisor`);
* :mod:`upstream.stdio` - a stdio server as a child process group; :mod:`upstream.logs`
  - its log buffer;
* :mod:`upstream.relay` - the fast lane for ``tools/call``: JSON-RPC relayed as bytes;
* :mod:`upstream.mcpserver` - the MCP server side both buildings serve;
* :mod:`upstream.serving` - uvicorn with a graceful stop (``mcpd serve``, ``mcplocal serve``);
* :mod:`upstream.sdk_compat` - every use of a private attribute of the MCP SDK;
* :mod:`upstream.errors` - what all of it raises.
"""

from upstream.errors import ConnectionLost, RelayError, SessionGone, SpecError, UpstreamError
from upstream.logs import LogBuffer
from upstream.mcpserver import ListChangedServer, Watchers, connection_of
from upstream.relay import Relay, Target
from upstream.spec import HealthCheckSpec, UpstreamSpec
from upstream.supervisor import Instance, Supervisor, SupervisorSettings

__all__ = [
    "ConnectionLost",
    "HealthCheckSpec",
    "Instance",
    "ListChangedServer",
    "LogBuffer",
    "Relay",
    "RelayError",
    "SessionGone",
    "SpecError",
    "Supervisor",
    "SupervisorSettings",
    "Target",
    "UpstreamError",
    "UpstreamSpec",
    "Watchers",
    "connection_of",
]
