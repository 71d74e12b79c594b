"""Server-Sent Events as the relay reads and writes them.

An event's ``data:`` lines are joined; its ``id:`` and ``retry:`` are kept, for resuming a
stream the server closed (``Last-Event-ID``, SEP-1699). An event with no data - an SDK
server's *priming event* (``id: N``, an empty ``data:``, ``retry: 1000``), which opens each
POST's stream at protocol 2025-11-25 - carries no JSON-RPC message: :func:`events` leaves
it out, :func:`parse` gives it with empty ``data``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SSE_HEADERS = {"cache-control": "no-cache, no-transform"}


@dataclass(frozen=True)
class Event:
    data: bytes  # the data lines joined; empty for a priming event
    id: str | None = None
    retry: int | None = None  # milliseconds


def parse(buffer: bytearray) -> list[Event]:
    """The complete SSE events at the front of ``buffer``, taken off it."""
    out: list[Event] = []
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
        data: list[bytes] = []
        event_id: str | None = None
        retry: int | None = None
        for line in text[:cut].replace(b"\r\n", b"\n").split(b"\n"):
            field, _, value = line.partition(b":")
            value = value.removeprefix(b" ")
            if field == b"data":
                data.append(value)
            elif field == b"id" and b"\0" not in value:
                event_id = value.decode("utf-8", "replace")
            elif field == b"retry" and value.isdigit():
                retry = int(value)
        if data or event_id is not None or retry is not None:
            out.append(Event(b"\n".join(data), event_id, retry))


def events(buffer: bytearray) -> list[bytes]:
    """The data of the complete events at the front of ``buffer`` that carry any (priming
    events carry none), taken off it."""
    return [e.data for e in parse(buffer) if e.data.strip()]


def sse_event(message: dict[str, Any]) -> bytes:
    return sse_data(json.dumps(message, separators=(",", ":")).encode())


def sse_data(data: bytes) -> bytes:
    """One SSE ``message`` event carrying ``data`` (one line of JSON)."""
    return b"event: message\r\ndata: " + data + b"\r\n\r\n"
