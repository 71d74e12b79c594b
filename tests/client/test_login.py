"""Reading the user's saved login (what `mcpctl login` wrote), as mcplocal does, and the
CLI's config writing it in the same format."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cli.config import Config, Context
from client import DEFAULT_SERVER, LoginFile, SavedLogin, config_path, saved_login


def test_saved_login_of_the_current_or_a_named_context(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "currentContext": "work",
                "contexts": {
                    "work": {"server": "https://mcpd.example", "user": "a@x", "token": "s1"},
                    "home": {"user": "b@x"},
                },
            }
        )
    )
    assert saved_login(path=path) == SavedLogin("https://mcpd.example", "a@x", "s1")
    assert saved_login("home", path) == SavedLogin(DEFAULT_SERVER, "b@x", None)
    with pytest.raises(ValueError, match="no context `nope`; contexts: home, work"):
        saved_login("nope", path)


def test_a_missing_file_is_one_default_context_and_a_bad_one_says_why(tmp_path: Path) -> None:
    assert LoginFile.read(tmp_path / "none.yaml") == LoginFile()
    assert saved_login(path=tmp_path / "none.yaml").token is None
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ValueError, match=r"config file .*bad.yaml is not a mapping"):
        saved_login(path=bad)
    bad.write_text("contexts: {x: 3}\n")
    with pytest.raises(ValueError, match="context `x` is not a mapping"):
        saved_login(path=bad)


def test_the_path_is_mcpctl_config_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCPCTL_CONFIG", "/tmp/somewhere/c.yaml")
    assert config_path() == Path("/tmp/somewhere/c.yaml")
    monkeypatch.delenv("MCPCTL_CONFIG")
    assert config_path().parts[-2:] == ("mcpctl", "config.yaml")


def test_what_the_cli_writes_the_client_reads(tmp_path: Path) -> None:
    path = tmp_path / "c" / "config.yaml"
    cfg = Config.load(path)
    cfg.contexts["t"] = Context(server="http://127.0.0.1:1", user="u@x", token="s")
    cfg.current = "t"
    cfg.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert saved_login(path=path) == SavedLogin("http://127.0.0.1:1", "u@x", "s")
    assert yaml.safe_load(path.read_text()) == {
        "currentContext": "t",
        "contexts": {"default": {"server": DEFAULT_SERVER}, "t": vars(cfg.contexts["t"])},
    }
