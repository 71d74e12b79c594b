"""``mcplocal``: the authorizing MCP proxy (built in a later issue)."""

from __future__ import annotations

import sys


def main() -> None:
    print("mcplocal: not built yet; see the project's open issues", file=sys.stderr)
    sys.exit(1)
