"""The aggregating proxy: one MCP server whose tools are a project's servers' tools.

Every exposed name is ``<server>__<item>`` (see :mod:`mcplocal.names`). ``tools/list``
and ``tools/call`` are both filtered by this process's copy of the shared enforcer
(:class:`mcplocal.policy.PolicyFollower`): ``run`` on ``tools/<server>__<tool>``, which a
binding on the server covers and a tool-level deny takes away. A tool the caller may not
run is answered exactly like a tool that does not exist.

Upstreams are mcpd's per-server endpoints (``/api/v1/servers/{name}/mcp?project=P``),
each held by the same supervisor mcpd uses for its own upstreams (upstream/supervisor):
one session per server and project, reconnect with backoff, a ``tools/list`` cache with
positive and negative TTL dropped on ``listChanged`` and on recovery. One dead upstream is
left out of listings and its calls return ``isError`` results naming it; the others carry on.

* :mod:`.catalog` - projects, their supervisors, the caller's tools (:class:`Caller`);
* :mod:`.calls` - ``tools/call``, through the SDK or the fast lane, audited;
* :mod:`.aggregate` - prompts and resources;
* :mod:`.notify` - listChanged for remembered connections, the serialized listing;
* :mod:`.server` - :class:`Proxy`, the MCP server over all of them.
"""

from mcplocal.proxy.catalog import Caller, ProjectInfo
from mcplocal.proxy.server import Proxy

__all__ = ["Caller", "ProjectInfo", "Proxy"]
