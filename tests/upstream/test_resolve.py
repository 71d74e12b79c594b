"""stdio command resolution: mcpd's own environment first, then its PATH; a missing
command is named with the PATH searched."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from upstream.resolve import CommandNotFound, resolve_argv, search_path


def test_the_environments_bin_dir_comes_first_and_the_child_gets_the_same_path(
    tmp_path: Path,
) -> None:
    venv_bin = str(Path(sys.prefix) / "bin")
    assert search_path("/usr/bin").split(":") == [venv_bin, "/usr/bin"]
    env = {"PATH": str(tmp_path)}
    argv = resolve_argv(["mcpd", "--help"], env)  # in the venv, not on the given PATH
    assert argv == [f"{venv_bin}/mcpd", "--help"]
    assert env["PATH"] == f"{venv_bin}:{tmp_path}"


def test_a_command_on_the_path_and_one_with_a_slash(tmp_path: Path) -> None:
    tool = tmp_path / "my-server"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert resolve_argv(["my-server"], {"PATH": str(tmp_path)})[0] == str(tool)
    assert resolve_argv([str(tool), "x"], {}) == [str(tool), "x"]


def test_a_missing_command_names_itself_and_the_path_searched(tmp_path: Path) -> None:
    with pytest.raises(CommandNotFound) as err:
        resolve_argv(["no-such-mcp-server"], {"PATH": str(tmp_path)})
    assert str(err.value) == (
        f"command `no-such-mcp-server` not found on PATH {Path(sys.prefix) / 'bin'}:{tmp_path}"
    )
    with pytest.raises(CommandNotFound, match="does not exist or is not executable"):
        resolve_argv([str(tmp_path / "nope")], {})
