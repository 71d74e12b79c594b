"""Golden files for `-o yaml` and `-o json` (timestamps masked). UPDATE_GOLDEN=1 rewrites them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.cli.test_cli_flows import login, mcpctl

GOLDEN = Path(__file__).with_name("golden")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)?")


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_server_output_matches_golden(cli_env: dict[str, str], fmt: str) -> None:
    login(cli_env)
    name = f"golden-{fmt}"
    mcpctl("delete", "server", name)
    code, _, err = mcpctl(
        "create", "server", name, "--transport", "stdio", "--command", "mcp-server-time",
        "--arg", "--local-timezone=UTC", "--env", "TZ=UTC", "--description", "golden",
    )  # fmt: skip
    assert code == 0, err
    code, out, err = mcpctl("get", "server", name, "-o", fmt)
    assert code == 0, err
    got = _TIME.sub("<time>", out).replace(name, "<name>")
    path = GOLDEN / f"server.{fmt}"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(got)
    assert got == path.read_text()
