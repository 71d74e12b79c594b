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


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_get_output_applies_back_unchanged(
    cli_env: dict[str, str], tmp_path: Path, fmt: str
) -> None:
    """`get KIND NAME -o yaml|json` is a manifest that `apply -f` takes back unchanged, for
    every kind that has one (kubectl's round trip)."""
    login(cli_env)
    s = f"rt-{fmt}"
    for args in (
        ["user", f"{s}-u", "--display-name", "Round Trip"],
        ["group", f"{s}-g", "--member", f"{s}-u"],
        ["secret", f"{s}-sec", "--from-literal", "k=v"],
        ["server", f"{s}-srv", "--command", "mcp-server-time", "--env", f"K=secret:{s}-sec/k"],
        ["project", f"{s}-p", "--server", f"{s}-srv", "--description", "two words"],
        ["rbac", f"{s}-r", "--subject", f"Group:{s}-g", "--roleBindings",
         f"role:view,resource:servers,project:{s}-p", "--roleBindings", "action:logs"],
    ):  # fmt: skip
        mcpctl("delete", args[0], args[1])
        code, _, err = mcpctl("create", *args)
        assert code == 0, err
    for kind, name in (
        ("user", f"{s}-u"),
        ("group", f"{s}-g"),
        ("secret", f"{s}-sec"),
        ("server", f"{s}-srv"),
        ("project", f"{s}-p"),
        ("rbac", f"{s}-r"),
    ):
        code, out, err = mcpctl("get", kind, name, "-o", fmt)
        assert code == 0, err
        f = tmp_path / f"{kind}.{fmt}"
        f.write_text(out)
        code, out, err = mcpctl("apply", "-f", str(f))
        assert code == 0, err
        assert out.strip().endswith(f"/{name} unchanged"), out
