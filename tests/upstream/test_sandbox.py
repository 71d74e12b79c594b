"""upstream.sandbox: what a stdio child is started as, with real processes (bwrap where it
runs here; the parts that need it skip, saying so)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import anyio
import pytest

from upstream.errors import SandboxError
from upstream.logs import LogBuffer
from upstream.sandbox import Sandbox, command_paths, install_root
from upstream.stdio import child_environment, stdio_transport

ROOT = Path(__file__).resolve().parents[2]


def bwrap_or_skip() -> Sandbox:
    box = Sandbox(mode="bwrap")
    if not box.probe():
        pytest.skip(f"bubblewrap cannot run here: {box.description}")
    return box


def test_install_roots() -> None:
    assert install_root(Path("/opt/venv/bin/tool")) == Path("/opt/venv")
    assert install_root(Path("/x/npm/node_modules/.bin/srv")) == Path("/x/npm")
    assert install_root(Path("/x/npm/node_modules/a/node_modules/b/i.js")) == Path("/x/npm")
    assert install_root(Path("/srv/tools/run.sh")) == Path("/srv/tools")


def test_a_venv_command_needs_its_venv_and_the_base_python() -> None:
    roots = command_paths(sys.executable, None)
    assert Path(sys.prefix) in roots or Path(sys.prefix).resolve() in roots
    assert Path(sys.base_prefix).resolve() in [r.resolve() for r in roots]
    assert command_paths("no-such-command-here", "/usr/bin") == []


def test_required_sandbox_refuses_to_start_without_bubblewrap() -> None:
    box = Sandbox(mode="bwrap", bwrap=None)
    with pytest.raises(SandboxError, match="requires bubblewrap, and `bwrap` is not installed"):
        box.spawn(["true"], {})

    async def start() -> None:
        async with stdio_transport(["true"], {}, LogBuffer("x", None), sandbox=box):
            pass  # pragma: no cover - never started

    with pytest.raises(SandboxError):
        anyio.run(start)


def test_auto_falls_back_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    box = Sandbox(mode="auto", bwrap=None)
    with caplog.at_level(logging.WARNING, logger="upstream.sandbox"):
        assert box.spawn(["true"], {}).argv == ["true"]
        assert box.spawn(["true"], {}).argv == ["true"]
    warnings = [r for r in caplog.records if "WITHOUT a sandbox" in r.getMessage()]
    assert len(warnings) == 1
    assert Sandbox(mode="none").spawn(["true"], {}).argv == ["true"]


def test_a_sandboxed_child_sees_its_command_not_the_hidden_paths(tmp_path: Path) -> None:
    secret_dir = ROOT / "mcpd"  # inside the working directory, which the child may read
    bwrap_or_skip()
    box = Sandbox(mode="bwrap", hide=(secret_dir,), binds=(tmp_path,))
    (tmp_path / "seen").write_text("yes")
    script = (
        "import os, sys\n"
        f"print(open({str(tmp_path / 'seen')!r}).read())\n"
        f"print(os.listdir({str(secret_dir)!r}))\n"
        "print(os.getpid(), len([p for p in os.listdir('/proc') if p.isdigit()]))\n"
        "open('/tmp/w', 'w').write('private')\n"
    )
    spawn = box.spawn([sys.executable, "-c", script], child_environment({}))

    async def go() -> tuple[int | None, bytes]:
        process = await anyio.run_process(spawn.argv, env=child_environment({}), check=False)
        return process.returncode, process.stdout + process.stderr

    code, out = anyio.run(go)
    lines = out.decode().splitlines()
    assert code == 0, out
    assert lines[0] == "yes"
    assert lines[1] == "[]"  # mcpd/ is an empty tmpfs there
    pid, procs = lines[2].split()
    assert int(pid) < 10 and int(procs) <= 3  # its own PID namespace: bwrap's init, itself
    assert not Path("/tmp/w").exists() or Path("/tmp/w").read_text() != "private"
