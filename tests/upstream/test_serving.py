"""upstream/serving.py's trusted-proxy options, on a real uvicorn: X-Forwarded-For is
believed from the listed peers only (mcpd's MCPD_TRUSTED_PROXIES, mcplocal's
MCPLOCAL_TRUSTED_PROXIES), and from none by default."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest
import uvicorn

from tests.servers.launch import free_port
from upstream.serving import proxy_options


async def whoami(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = str(scope["client"][0]).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def seen_as(trusted: str | None) -> str:
    port = free_port()
    config = uvicorn.Config(whoami, host="127.0.0.1", port=port, log_level="warning")
    for name, value in proxy_options(trusted).items():
        setattr(config, name, value)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.02)
        r = httpx.get(f"http://127.0.0.1:{port}/", headers={"X-Forwarded-For": "203.0.113.9"})
        return r.text
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.parametrize(
    ("trusted", "client"),
    [
        ("", "127.0.0.1"),  # the default of both settings: nobody is believed
        ("10.0.0.0/8", "127.0.0.1"),  # a proxy that is not this peer
        ("127.0.0.1", "203.0.113.9"),  # the peer is the trusted proxy
        (None, "203.0.113.9"),  # uvicorn's own default, which believed any loopback peer
    ],
)
def test_x_forwarded_for_is_believed_from_trusted_proxies_only(
    trusted: str | None, client: str
) -> None:
    assert seen_as(trusted) == client
