"""The house checks itself: the import-linter contracts in pyproject.toml hold, and break.

Three foundations (authz, upstream, client) and three buildings (mcpd, mcplocal, cli);
buildings import foundations, never each other (STYLE.md §0). ``make test`` runs
``lint-imports``; these tests show that it passes on the tree and that it fails, naming
the contract, when one forbidden import is added to a copy of the tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("authz", "upstream", "client", "mcpd", "mcplocal", "cli")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(tree / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the source packages and pyproject.toml, to break on purpose."""
    dest = tmp_path_factory.mktemp("house")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PACKAGES:
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_the_tree_keeps_every_contract() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("authz/__init__.py", "import fastapi", "authz imports no web framework"),
        ("authz/__init__.py", "import sqlalchemy", "authz imports no web framework"),
        ("upstream/__init__.py", "import mcpd", "upstream imports at most authz"),
        ("client/__init__.py", "import cli", "client imports none of the buildings"),
        ("mcplocal/__init__.py", "import mcpd", "mcplocal imports no other building"),
        ("mcpd/__init__.py", "import mcplocal", "mcpd imports no other building"),
        ("cli/__init__.py", "import upstream", "cli imports no other building"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tree: Path, module: str, line: str, contract: str
) -> None:
    path = tree / module
    original = path.read_text()
    path.write_text(original + f"\n{line}  # broken on purpose\n")
    try:
        result = _lint(tree)
    finally:
        path.write_text(original)
    assert result.returncode != 0, result.stdout
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    # a foundation's forbidden import may break its importers' contracts too (import-linter
    # follows indirect imports): the one named must be among them
    assert any(row.startswith(contract) for row in broken), result.stdout
