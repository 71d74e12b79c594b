"""JSON-RPC as the relay frames it: which caller's POST is plain enough to relay, and the
``isError`` result a failed relayed call is answered with."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_REQUEST_KEYS = {"jsonrpc", "id", "method", "params"}


def single_request(headers: Mapping[str, str], body: bytes) -> dict[str, Any] | None:
    """The one JSON-RPC request this POST holds, if it is plain enough for a fast lane
    (else None: the SDK path answers it, errors included). The caller's protocol version
    is for the lane to check (``Target.speaks``)."""
    if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return None
    accept = headers.get("accept", "")
    if "application/json" not in accept or "text/event-stream" not in accept:
        return None
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):  # too deep too: the SDK path answers it (400)
        return None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return None
    if set(message) - _REQUEST_KEYS or not isinstance(message.get("method"), str):
        return None
    request_id = message.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
        return None
    if not isinstance(message.get("params", {}), dict):
        return None
    return message


def is_tools_call(message: dict[str, Any]) -> bool:
    params = message.get("params")
    return (
        message["method"] == "tools/call"
        and isinstance(params, dict)
        and isinstance(params.get("name"), str)
        and isinstance(params.get("arguments", {}), dict)
    )


def error_result(request_id: Any, text: str) -> dict[str, Any]:
    """A ``tools/call`` result with ``isError``: the upstream failed, not the protocol."""
    result = {"content": [{"type": "text", "text": text}], "isError": True}
    return {"jsonrpc": "2.0", "id": request_id, "result": result}
