"""Exposed names ``<server>__<tool>``: safe for every client, unique, and mapped back exactly.

Some clients accept only ``[A-Za-z0-9_-]{1,64}``. A name that fits is used as is; any
other (a dot in a tool name, a long server name ...) is cut and given a stable hash of the
full name, so it is the same on every replica and every restart. The tool's own name
is kept whole as far as it fits, the server's name is cut first (to no less than
:data:`MIN_SERVER` characters), so a long name still says which tool it is. Callers resolve names
through the reverse map built with the listing - a name is never ``split`` back.
"""

from __future__ import annotations

import hashlib
import re

MAX_NAME = 64
MIN_SERVER = 12
SEPARATOR = "__"
_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9_-]")


def exposed_name(server: str, item: str) -> str:
    full = f"{server}{SEPARATOR}{item}"
    if _SAFE.match(full):
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:10]
    budget = MAX_NAME - len(digest) - 1 - len(SEPARATOR)  # for the server's and tool's parts
    srv, tool = _UNSAFE_CHAR.sub("_", server), _UNSAFE_CHAR.sub("_", item)
    srv = srv[: max(min(len(srv), MIN_SERVER), budget - len(tool))]
    tool = tool[: budget - len(srv)]
    return f"{srv}{SEPARATOR}{tool}_{digest}"


class NameMap:
    """Exposed name -> (server, upstream name), for one listing."""

    def __init__(self) -> None:
        self._by_exposed: dict[str, tuple[str, str]] = {}

    def add(self, server: str, item: str) -> str:
        name = exposed_name(server, item)
        self._by_exposed[name] = (server, item)
        return name

    def resolve(self, exposed: str) -> tuple[str, str] | None:
        return self._by_exposed.get(exposed)

    def __len__(self) -> int:
        return len(self._by_exposed)
