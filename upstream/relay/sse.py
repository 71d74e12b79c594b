"""Server-Sent Events as the relay reads and writes them: ``data:`` lines joined per event."""

from __future__ import annotations

import json
from typing import Any

SSE_HEADERS = {"cache-control": "no-cache, no-transform"}


def events(buffer: bytearray) -> list[bytes]:
    """Complete SSE events' data (``data:`` lines joined), taken off the front of ``buffer``."""
    out: list[bytes] = []
    while True:
        text = bytes(buffer)
        cut, sep = -1, 0
        for s in (b"\r\n\r\n", b"\n\n", b"\r\r"):
            i = text.find(s)
            if i != -1 and (cut == -1 or i < cut):
                cut, sep = i, len(s)
        if cut == -1:
            return out
        del buffer[: cut + sep]
        data = [
            line[5:].removeprefix(b" ")
            for line in text[:cut].replace(b"\r\n", b"\n").split(b"\n")
            if line.startswith(b"data:")
        ]
        if data:
            out.append(b"\n".join(data))


def sse_event(message: dict[str, Any]) -> bytes:
    data = json.dumps(message, separators=(",", ":")).encode()
    return b"event: message\r\ndata: " + data + b"\r\n\r\n"
