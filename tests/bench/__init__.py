"""Smoke tests of the benchmarks: each runs ``bench/<name>.py --quick`` as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[2] / "bench"


def quick_report(script: str, timeout: float) -> Any:
    """Run ``bench/<script> --quick``; it must exit 0 and end with its JSON report line."""
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output on stdout; stderr:\n{proc.stderr}"
    return json.loads(lines[-1])
