"""The README's quickstart, run as written: its ```sh quickstart blocks, one bash script,
against a fresh mcpd (real processes, loopback only), so the README cannot drift.

What the test changes, and only that:

* HOME is a temporary directory (mcpd's data dir, mcpctl's config: the README's non-root
  default paths) and MCPD_PORT a free port, both honoured by the README's commands;
* mcpd is started here, as `make run` would (`make` must not reinstall the shared venv),
  with a PATH *without* .venv/bin: `mcp-server-time` must be found the documented way;
* `pip install PKG` is checked as already done (`pip show`): the dev extras hold it;
* `npx -y @modelcontextprotocol/server-everything` and `npx -y @modelcontextprotocol/inspector`
  run the copies already installed under .tools (offline, fast; the Inspector on Node 22),
  through an `npx` shim first on the PATH;
* MCPLOCAL_PORT is a free port, and mcplocal's cache and audit spool go to the temporary
  HOME (as root, the defaults would be /var/lib/mcplocal).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers.launch import stop, wait_ready

ROOT = Path(__file__).resolve().parents[1]
EVERYTHING = ROOT / ".tools/npm/node_modules/@modelcontextprotocol/server-everything"
INSPECTOR = ROOT / ".tools/npm/node_modules/@modelcontextprotocol/inspector"
NODE22 = ROOT / ".tools/node22/node_modules/node/bin/node"
BLOCK = re.compile(r"^```sh quickstart\n(.*?)^```", re.M | re.S)
PASSWORD = "quickstart password"


def quickstart_script(readme: str) -> str:
    blocks = BLOCK.findall(readme)
    assert blocks, "README.md has no ```sh quickstart blocks"
    script = "\n".join(blocks)
    # already installed by the dev extras: check it, never touch the shared venv
    return re.sub(r"^pip install (\S+)", r"python -m pip show -q \1 >/dev/null", script, flags=re.M)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    if shutil.which("node") is None or not (EVERYTHING.exists() and INSPECTOR.exists()):
        pytest.skip("needs node and .tools/npm (scripts/ensure-node-tools.sh)")
    home, shims = tmp_path / "home", tmp_path / "bin"
    home.mkdir()
    shims.mkdir()
    npx = shims / "npx"
    npx.write_text(
        "#!/bin/sh\n"
        '[ "$1" = "-y" ] && shift\n'
        'if [ "$1" = "@modelcontextprotocol/server-everything" ]; then\n'
        f'  shift; exec node "{EVERYTHING}/dist/index.js" "$@"\n'
        "fi\n"
        'if [ "$1" = "@modelcontextprotocol/inspector" ]; then\n'
        f'  shift; exec "{NODE22}" "{INSPECTOR}/clients/launcher/build/index.js" "$@"\n'
        "fi\n"
        'echo "npx shim: unexpected $*" >&2; exit 1\n'
    )
    npx.chmod(0o755)
    venv_bin = str(Path(sys.executable).parent)
    path = [d for d in os.environ["PATH"].split(os.pathsep) if d not in (venv_bin, "")]
    port = _free_port()
    prefixes = ("MCPD_", "MCPCTL_", "MCPLOCAL_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env |= {"HOME": str(home), "MCPD_PORT": str(port), "MCPLOCAL_PORT": str(_free_port())}
    env |= {
        "MCPLOCAL_CACHE_DIR": str(home / ".cache/mcplocal"),
        "MCPLOCAL_AUDIT_SPOOL_DIR": str(home / ".local/share/mcplocal/audit"),
    }
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "VIRTUAL_ENV"):
        env.pop(var, None)
    mcpd_env = {**env, "PATH": os.pathsep.join([str(shims), *path])}
    log = (tmp_path / "mcpd.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(venv_bin) / "mcpd"), "serve"], env=mcpd_env, stdout=log, stderr=log, cwd=tmp_path
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/readyz", proc, tmp_path / "mcpd.log")
        script = quickstart_script((ROOT / "README.md").read_text())
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            input=PASSWORD + "\n",
            capture_output=True,
            text=True,
            env={**env, "PATH": os.pathsep.join([str(shims), *path])},
            cwd=ROOT,
            timeout=240,
        )
        out = done.stdout + done.stderr
        assert done.returncode == 0, out + (tmp_path / "mcpd.log").read_text()[-3000:]
        assert "Traceback" not in out
        assert "server/time unchanged" in done.stdout
        # through mcplocal: the Python SDK, the Inspector over HTTP, `mcplocal stdio`
        assert done.stdout.count("UTC") >= 2 and "Echo: hello" in done.stdout, done.stdout
        running = [line.split()[0] for line in done.stdout.splitlines() if " RUNNING " in line]
        assert sorted(running) == ["everything", "time"], done.stdout
        # the embedded default, in the (non-root) user's data directory, readable by no one else
        db = home / ".local/share/mcpd/mcpd.db"
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
    finally:
        stop(proc)
        log.close()
        (ROOT / "time.yaml").unlink(missing_ok=True)
        (ROOT / "mcplocal.log").unlink(missing_ok=True)
