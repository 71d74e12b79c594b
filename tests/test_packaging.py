"""The model and policy files ship inside the wheel, not only in a checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_wheel_carries_model_policies_and_migrations(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("mcpctl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.name for p in (ROOT / "authz" / "policies").glob("*.csv")}
    assert shipped, "no policy files in the checkout"
    assert "authz/model.conf" in names
    assert {f"authz/policies/{n}" for n in shipped} <= names
    assert "mcpd/migrations/script.py.mako" in names
    assert "mcpd/migrations/versions/0001_policy_rules.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    for script in ("mcpctl", "mcpd", "mcplocal"):
        assert f"{script} =" in text


def test_installed_package_finds_its_model_and_policies() -> None:
    from authz.policy import default_model_path, default_policy_dir

    assert default_model_path().is_file()
    assert sorted(p.name for p in default_policy_dir().glob("*.csv")) == sorted(
        p.name for p in (ROOT / "authz" / "policies").glob("*.csv")
    )
