"""The client against a real mcpd process (the CLI tests' one: tests/cli/conftest.py)."""

from __future__ import annotations

from tests.cli.conftest import ADMIN, PASSWORD, mcpd_url

__all__ = ["ADMIN", "PASSWORD", "mcpd_url"]
