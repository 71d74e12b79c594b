"""mcplocal's command line: --cache-dir, a default cache dir a non-root user can use, a
clear error (not a traceback) when none is writable, and usage errors exit 3."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mcplocal import settings as settings_module

MCPLOCAL = str(Path(sys.executable).with_name("mcplocal"))


def test_default_cache_dir_falls_back_to_the_users_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(settings_module, "DEFAULT_CACHE_DIR", blocker / "cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert settings_module.default_cache_dir() == tmp_path / "xdg" / "mcplocal"
    monkeypatch.setattr(settings_module, "DEFAULT_CACHE_DIR", tmp_path / "var" / "cache")
    assert settings_module.default_cache_dir() == tmp_path / "var" / "cache"


def test_unwritable_cache_dir_is_a_message_and_usage_errors_exit_3(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {**os.environ, "MCPLOCAL_MCPD_TOKEN": "mcpctl_ses_x"}
    done = subprocess.run(
        [MCPLOCAL, "serve", "--cache-dir", str(blocker / "cache"), "--port", "1"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith(f"mcplocal: cache directory `{blocker / 'cache'}` cannot")
    assert "--cache-dir" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run([MCPLOCAL, "serve", "--bogus"], capture_output=True, text=True)
    assert done.returncode == 3
    help_text = subprocess.run([MCPLOCAL, "--help"], capture_output=True, text=True).stdout
    assert "``" not in help_text and "* " not in help_text  # no raw reST
