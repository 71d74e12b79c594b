"""Defence in depth for stdio children: what a server's process can see of the host.

A stdio server runs whatever its definition says - an admin's too - so it must not be able
to read what the process that started it holds. Three layers:

* :func:`forbid_dumping` - the parent makes itself non-dumpable (``PR_SET_DUMPABLE`` 0):
  ``/proc/<pid>/environ``, ``mem``, ``fd/`` and ``maps`` are then closed to other
  processes of the same user that lack ``CAP_SYS_PTRACE``;
* :class:`Sandbox` with ``mode`` ``auto`` or ``bwrap`` - each child runs under bubblewrap:
  the system (``/usr``, ``/etc`` minus its secrets, ...) and the install its command lives
  in read-only, a private ``/tmp`` and ``HOME``, its own PID namespace (it sees no other
  process), no capabilities, network kept; the paths in ``hide`` (the parent's database,
  key file, logs) are overlaid with empty ones. ``auto`` falls back to no sandbox, with one
  warning, where bubblewrap cannot run (containers without user namespaces);
* ``user`` - when the parent is root, children run as that OS user and group (through
  util-linux's ``setpriv``, without the parent's supplementary groups).

No ``--new-session``: it would move the child out of the process group the supervisor
stops (SIGTERM, then SIGKILL, to the group); the child has no controlling terminal anyway.
"""

from __future__ import annotations

import ctypes
import logging
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from upstream.errors import SandboxError

logger = logging.getLogger(__name__)

Mode = Literal["auto", "bwrap", "none"]
PR_SET_DUMPABLE = 4
# The system, read-only; those that are symlinks (merged /usr) stay symlinks.
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# Under /etc, what a process running as the parent's user could read and must not.
ETC_SECRETS = (
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh",
    "/etc/ssl/private",
    "/etc/mcpctl",
)
# Name service and resolver state some systems keep outside /etc (resolv.conf links here).
RUNTIME = ("/run/systemd/resolve",)
PROBE_TIMEOUT = 10.0
PRIVATE_TMP = "/tmp"  # noqa: S108 - an empty tmpfs of the child's own, not the host's
PRIVATE_TMP = "/tmp"  # noqa: S108 - an empty tmpfs of the child's own, not the host's


def forbid_dumping() -> bool:
    """Make this process non-dumpable (Linux); True if it now is."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:  # pragma: no cover - never fails on Linux
        logger.warning("prctl(PR_SET_DUMPABLE, 0) failed: errno %d", ctypes.get_errno())
        return False
    return True


@dataclass(frozen=True)
class Spawn:
    """How to start one child: the argv to exec (the sandbox's and the user switch's
    wrappers around the command)."""

    argv: list[str]
    note: str = ""  # appended to the "started" log line


def install_root(path: Path) -> Path:
    """The directory a command's install lives in: the parent of its outermost
    ``node_modules``, the prefix above a ``bin``/``sbin`` directory, else its directory."""
    parts = path.parts
    if "node_modules" in parts:
        return Path(*parts[: parts.index("node_modules")])
    if path.parent.name in ("bin", "sbin", ".bin"):
        return path.parent.parent
    return path.parent


def _interpreter(path: Path, search: str | None) -> Path | None:
    """The interpreter a ``#!`` script names (``env X`` looked up on ``search``)."""
    try:
        with path.open("rb") as f:
            head = f.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").split()
    if not words:
        return None
    if Path(words[0]).name == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
        found = shutil.which(words[0], path=search) if words else None
        return Path(found) if found else None
    return Path(words[0])


def command_paths(command: str, search: str | None) -> list[Path]:
    """Every directory the command needs to run: its install, its interpreter's, and (for a
    virtualenv) the base Python's, following symlinks."""
    found = shutil.which(command, path=search) if os.sep not in command else command
    if found is None:
        return []
    roots: list[Path] = []
    todo = [Path(os.path.abspath(found))]
    seen: set[Path] = set()
    while todo and len(seen) < 16:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for candidate in (path, path.resolve()):
            root = install_root(candidate)
            roots += [root, root.resolve()]  # a symlinked venv: where it points, too
            cfg = root / "pyvenv.cfg"
            if cfg.is_file():
                for line in cfg.read_text(errors="replace").splitlines():
                    key, _, value = line.partition("=")
                    if key.strip() == "home" and value.strip():
                        todo.append(Path(value.strip()) / "python3")
        if (interpreter := _interpreter(path.resolve(), search)) is not None:
            todo.append(interpreter)
    return roots


def _within(path: Path, other: Path) -> bool:
    return path == other or other in path.parents


@dataclass
class Sandbox:
    """How stdio children are confined. ``hide``: paths they must not see (files or
    directories); ``binds``: more paths they may read; ``user``: the OS user to run them as
    (the parent must be root)."""

    mode: Mode = "auto"
    hide: tuple[Path, ...] = ()
    binds: tuple[Path, ...] = ()
    user: str | None = None
    bwrap: str | None = field(default_factory=lambda: shutil.which("bwrap"))
    setpriv: str | None = field(default_factory=lambda: shutil.which("setpriv"))
    _usable: bool | None = field(default=None, init=False)
    _why: str = field(default="", init=False)
    _warned: set[Path] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        if self.user is not None:
            if os.geteuid() != 0:
                raise SandboxError(f"stdio user `{self.user}` needs mcpd to run as root")
            try:
                pwd.getpwnam(self.user)
            except KeyError as exc:
                raise SandboxError(f"stdio user `{self.user}` does not exist") from exc
            if self.setpriv is None:
                raise SandboxError("a stdio user needs `setpriv` (Debian: util-linux)")

    # -- is bubblewrap usable here ---------------------------------------------------------

    def probe(self) -> bool:
        """Whether children get bubblewrap: tried once (``bwrap ... true``), then
        remembered; ``auto`` warns once when it cannot."""
        if self._usable is not None:
            return self._usable
        if self.mode == "none":
            self._usable, self._why = False, "MCPD_STDIO_SANDBOX=none"
            return False
        if self.bwrap is None:
            self._usable, self._why = False, "`bwrap` is not installed (Debian: bubblewrap)"
        else:
            spawn = self._wrap(["true"], {"PATH": "/usr/bin:/bin"}, "/")
            try:
                done = subprocess.run(
                    self._as_user(spawn.argv),
                    env={"PATH": "/usr/bin:/bin"},
                    capture_output=True,
                    timeout=PROBE_TIMEOUT,
                    check=False,
                )
                ok, detail = done.returncode == 0, done.stderr.decode(errors="replace").strip()
            except (OSError, subprocess.TimeoutExpired) as exc:
                ok, detail = False, str(exc)
            self._usable = ok
            self._why = "" if ok else f"`bwrap` cannot run here: {detail[:300] or 'no reason'}"
        if self._usable:
            logger.info("stdio servers run under bubblewrap (%s)", self.bwrap)
        elif self.mode == "auto":
            logger.warning(
                "stdio servers run WITHOUT a sandbox: %s; they can read what mcpd's user "
                "can (install bubblewrap and allow user namespaces, or set "
                "MCPD_STDIO_SANDBOX=none to say this is intended)",
                self._why,
            )
        else:
            logger.error("stdio servers cannot start: MCPD_STDIO_SANDBOX=bwrap but %s", self._why)
        return self._usable

    @property
    def description(self) -> str:
        """One line for logs and status: which isolation children get."""
        user = f", as user `{self.user}`" if self.user else ""
        if self.probe():
            return f"bubblewrap{user}"
        return f"none ({self._why}){user}"

    # -- one child -------------------------------------------------------------------------

    def spawn(self, argv: list[str], env: dict[str, str]) -> Spawn:
        """How to start ``argv`` with ``env``; raises :class:`SandboxError` when the sandbox
        is required and cannot run."""
        if not self.probe():
            if self.mode == "bwrap":
                raise SandboxError(
                    f"not started: MCPD_STDIO_SANDBOX=bwrap requires bubblewrap, and {self._why}"
                )
            return Spawn(self._as_user(argv), note=self._user_note())
        spawn = self._wrap(argv, env, os.getcwd())
        return Spawn(self._as_user(spawn.argv), note=" (in bubblewrap)" + self._user_note())

    def _user_note(self) -> str:
        return f" (as user `{self.user}`)" if self.user else ""

    def _as_user(self, argv: list[str]) -> list[str]:
        """``argv`` run as :attr:`user` through util-linux's ``setpriv`` (an exec, so no
        code runs between fork and exec: uvloop, which serves mcpd, has no ``user=``)."""
        if self.user is None:
            return argv
        entry = pwd.getpwnam(self.user)
        ids = [f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]
        return [self.setpriv or "setpriv", *ids, "--", *argv]

    def _wrap(self, argv: list[str], env: dict[str, str], cwd: str) -> Spawn:
        assert self.bwrap is not None
        args = [self.bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc"]
        args += ["--cap-drop", "ALL"] if os.geteuid() == 0 or self.user else []
        for name in SYSTEM:
            path = Path(name)
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), name]
            elif path.is_dir():
                args += ["--ro-bind", name, name]
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", PRIVATE_TMP]
        home = env.get("HOME")
        if home and not any(_within(Path(s), Path(home)) for s in SYSTEM):  # not / nor /usr
            args += ["--tmpfs", home]
        needed = [*command_paths(argv[0], env.get("PATH")), *self.binds]
        here = Path(cwd)
        if here != Path("/") and not (home and _within(Path(home), here)):
            needed.append(here)
        needed += [Path(p) for p in RUNTIME]
        for path in _outermost(needed):
            if path.exists() and not any(_within(path, Path(s)) for s in SYSTEM):
                args += ["--ro-bind", str(path), str(path)]
        for path in [*map(Path, ETC_SECRETS), *self.hide]:
            args += self._hidden(path, needed)
        args += ["--chdir", cwd, "--", *argv]
        return Spawn(args)

    def _hidden(self, path: Path, needed: list[Path]) -> list[str]:
        if path.is_dir():
            if any(_within(n, path) for n in needed):
                if path in self._warned:
                    return []
                self._warned.add(path)
                logger.warning(
                    "`%s` stays visible to stdio servers: it holds a command or the working "
                    "directory (its files mcpd names are hidden one by one)",
                    path,
                )
                return []
            return ["--tmpfs", str(path)]
        if path.exists():
            return ["--ro-bind", "/dev/null", str(path)]
        return []


def _outermost(paths: list[Path]) -> list[Path]:
    """``paths`` without those inside another one, in a stable order."""
    unique = sorted({Path(os.path.abspath(p)) for p in paths}, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in unique:
        if not any(_within(path, k) for k in kept):
            kept.append(path)
    return kept


__all__ = ["Mode", "Sandbox", "SandboxError", "Spawn", "forbid_dumping"]
