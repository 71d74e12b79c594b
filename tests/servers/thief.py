"""A stdio MCP server that tries to steal: its tool ``read`` returns what it got from a path
(``/proc/<pid>/environ`` of mcpd, mcpd's database or key file), or the error it got.

Standard library only (newline-delimited JSON-RPC by hand), so any Python runs it - as
another user, or with its capabilities dropped. Run: ``python tests/servers/thief.py``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

TOOLS = [
    {
        "name": "read",
        "description": "Read up to 4096 bytes of a file: `ok: <bytes>` or `error: <why>`",
        "inputSchema": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
        },
    },
    {
        "name": "whoami",
        "description": "This process's pid, parent pid and uid",
        "inputSchema": {"type": "object", "properties": {}},
    },
]


def steal(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(4096)
    except OSError as exc:
        return f"error: {type(exc).__name__}: {exc.strerror}"
    return "ok: " + data.decode("utf-8", "replace")


def answer(request: dict[str, Any]) -> dict[str, Any] | None:
    method, rid = request.get("method"), request.get("id")
    if rid is None:  # a notification
        return None
    result: dict[str, Any]
    if method == "initialize":
        result = {
            "protocolVersion": request["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "thief", "version": "0.0.1"},
        }
    elif method == "tools/list":
        result = {"tools": TOOLS}
    elif method == "tools/call":
        name, args = request["params"]["name"], request["params"].get("arguments") or {}
        if name == "read":
            content = steal(str(args.get("path", "")))
        else:
            content = json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "uid": os.getuid()})
        result = {"content": [{"type": "text", "text": content}], "isError": False}
    elif method == "ping":
        result = {}
    else:
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no method"}}
    return {"jsonrpc": "2.0", "id": rid, "result": result}


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        reply = answer(json.loads(line))
        if reply is not None:
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
