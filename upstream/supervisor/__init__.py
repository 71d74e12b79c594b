"""The supervisor: one upstream MCP session per server, kept alive, restarted, probed.

* :mod:`.registry` - :class:`Supervisor`, every instance of the process by server name;
* :mod:`.instance` - :class:`Instance`, one server's session and its lifecycle (start,
  backoff, FAILED, stop) and the calls made on it;
* :mod:`.connect` - its transport (a stdio child or Streamable HTTP) and fast lane;
* :mod:`.health` - its probes; :mod:`.tools` - its ``tools/list`` cache;
* :mod:`.settings` - :class:`SupervisorSettings`.
"""

from upstream.errors import UpstreamError
from upstream.supervisor.instance import FAILED, PENDING, RUNNING, STARTING, STOPPED, Instance
from upstream.supervisor.registry import Supervisor
from upstream.supervisor.settings import SupervisorSettings

__all__ = [
    "FAILED",
    "PENDING",
    "RUNNING",
    "STARTING",
    "STOPPED",
    "Instance",
    "Supervisor",
    "SupervisorSettings",
    "UpstreamError",
]
