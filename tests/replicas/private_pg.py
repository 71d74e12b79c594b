"""A private PostgreSQL cluster for one test, to stop and restart at will (the shared one on
127.0.0.1:5432 serves every other test and engineer: it is never restarted).

``initdb`` into a fresh directory, trust auth, listening on a free loopback port only, its
socket in that directory; stopped (``-m immediate`` if a fast stop hangs) and removed on exit.
As root, the server runs as the ``postgres`` OS user (``initdb`` refuses root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers.launch import free_port

PG_BIN = Path(os.environ.get("MCPCTL_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


@dataclass
class PrivatePostgres:
    port: int
    home: Path  # data/, the socket and server.log

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str, timeout: float = 60) -> None:
        argv = [str(PG_BIN / "pg_ctl"), "-D", str(self.home / "data"), "-t", "30", *args]
        r = subprocess.run(_as_postgres(argv), capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            log = (self.home / "server.log").read_text()[-2000:]
            raise AssertionError(f"pg_ctl {args[0]}: {r.stdout}{r.stderr}\n{log}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1"
        self.pg_ctl("start", "-w", "-l", str(self.home / "server.log"), "-o", options)

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("stop", "-w", "-m", mode)

    def restart(self, down: float = 0.0) -> None:
        """A fast restart: open connections are ended, in-flight transactions rolled back;
        the server stays away ``down`` seconds."""
        self.stop()
        time.sleep(down)
        self.start()


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def private_postgresql() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"no {PG_BIN / 'initdb'} (set MCPCTL_TEST_PG_BIN): no private PostgreSQL")
    home = Path(tempfile.mkdtemp(prefix="mcpctl-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(home, "postgres", "postgres")
        argv = [str(PG_BIN / "initdb"), "-D", str(home / "data"), "-U", "postgres",
                "-A", "trust", "--no-sync", "-E", "UTF8"]  # fmt: skip
        subprocess.run(_as_postgres(argv), check=True, capture_output=True, timeout=120)
        pg = PrivatePostgres(free_port(), home)
        pg.start()
        try:
            yield pg
        finally:
            try:
                pg.stop()
            except (AssertionError, subprocess.TimeoutExpired):
                with suppress(AssertionError, subprocess.TimeoutExpired):
                    pg.stop("immediate")
    finally:
        shutil.rmtree(home, ignore_errors=True)
