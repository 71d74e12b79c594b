"""Running an ASGI app under uvicorn with a graceful stop (mcpd serve, mcplocal serve).

On SIGTERM uvicorn stops accepting connections and waits for open ones. The MCP SDK answers
in Server-Sent Events through sse-starlette, which by default ends every SSE stream at once
on that signal: a ``tools/call`` in flight would lose its answer. Here streams get ``grace``
seconds to finish first (a call in flight completes), then the remaining ones (idle
``GET`` streams) are ended, and after ``timeout`` seconds uvicorn stops waiting anyway.

Once started (the app's lifespan done), everything allocated so far - modules, models,
the loaded policy - is moved out of the garbage collector's sight (``gc.freeze``): a full
collection otherwise walks it all, an ~80 ms pause of every request in flight about once
a second under load (bench/mcpd.py's p99 went from 80 ms to 26 ms).
"""

from __future__ import annotations

import gc
import threading
from typing import Any

from upstream import sdk_compat

GRACE_SECONDS = 5.0
TIMEOUT_SECONDS = 10


def proxy_options(trusted_proxies: str | None) -> dict[str, Any]:
    """uvicorn's options for ``trusted_proxies``: believe X-Forwarded-* from those peers
    only, and from none when it is empty (None: uvicorn's default, every loopback peer)."""
    if trusted_proxies is None:
        return {}
    listed = [p.strip() for p in trusted_proxies.split(",") if p.strip()]
    return {"proxy_headers": bool(listed), "forwarded_allow_ips": listed or None}


def serve(
    app: Any,
    host: str,
    port: int,
    *,
    grace: float = GRACE_SECONDS,
    trusted_proxies: str | None = None,
) -> None:
    """Serve ``app``; ``trusted_proxies`` (comma-separated addresses/CIDRs) are the only
    peers whose X-Forwarded-For/-Proto uvicorn believes (None: uvicorn's default, loopback)."""
    import uvicorn

    sdk_compat.keep_sse_streams_on_exit()
    drain = threading.Timer(grace, sdk_compat.end_sse_streams)
    drain.daemon = True

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            gc.collect()
            gc.freeze()

        def handle_exit(self, sig: int, frame: Any) -> None:
            if not drain.is_alive() and not sdk_compat.sse_streams_ending():
                drain.start()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        timeout_graceful_shutdown=TIMEOUT_SECONDS,
        **proxy_options(trusted_proxies),
    )
    Server(config).run()
