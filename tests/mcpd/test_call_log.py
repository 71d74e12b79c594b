"""mcpd's own tools/call records on SQLite (mcpd/calllog.py): in the spool beside the
database before the call is answered, committed in batches.

* a real ``mcpd serve`` killed with SIGKILL right after its calls were answered (their
  records still in the spool: the linger is long) loses none: the next start commits
  them, each once (a record sent twice is recorded once: tests/mcpd/test_audit_ingest.py);
* a reader of the audit log sees a call at once, whatever the linger;
* a database that refuses a batch loses nothing: the records stay, and the next flush
  commits them;
* a full spool refuses the record (and so the call) with the setting to raise.
"""

from __future__ import annotations

import signal
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from mcpd import audit
from mcpd.calllog import CallLog, spool_dir
from mcpd.db import make_engine, migrate
from mcpd.principal import Principal
from mcpd.runtime import build_runtime
from tests.mcpd.test_e2e_http import mcpd_process, mcpd_serve
from tests.mcpd.test_instances import (
    ADMIN,
    PASSWORD,
    ROOT,
    make_settings,
    mcp_session,
    mcp_url,
    run,
    serve_mcpd,
    text,
)
from tests.servers.launch import http_server
from upstream.spool import Spool, SpoolFull


def calls_in(db: Path) -> list[str]:
    """The event ids of the calls recorded in ``db``, read by another connection."""
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT event_id FROM audit_events WHERE action='call'")]


LINGER = {"MCPD_CALL_SPOOL_LINGER": "60"}  # nothing is committed but by a reader or a start


def login(base: str) -> str:
    r = httpx.post(f"{base}/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD})
    r.raise_for_status()
    token: str = r.json()["token"]
    return token


def audited(base: str, admin: str) -> list[str]:
    r = httpx.get(
        f"{base}/api/v1/auditevents",
        params={"action": "call", "limit": 1000},
        headers={"Authorization": f"Bearer {admin}"},
    )
    r.raise_for_status()
    return [e["eventId"] for e in r.json()["items"]]


@pytest.mark.timeout(120)
def test_a_killed_mcpd_loses_no_record_of_a_call_it_answered(tmp_path: Path) -> None:
    db = tmp_path / "mcpd.db"
    url = f"sqlite:///{db}"
    with http_server("demo") as (up, _):
        with mcpd_process(url, tmp_path, env=LINGER) as (first, base):
            admin = login(base)
            httpx.post(
                f"{base}/api/v1/servers",
                json={"name": "remote", "transport": "http",
                      "http": {"url": f"http://127.0.0.1:{up}/mcp"}},
                headers={"Authorization": f"Bearer {admin}"},
            ).raise_for_status()  # fmt: skip

            async def calls() -> list[str]:
                async with mcp_session(f"{base}/api/v1/servers/remote/mcp", admin) as s:
                    return [text(await s.call_tool("add", {"a": i, "b": 1})) for i in range(20)]

            assert run(calls) == [str(i + 1) for i in range(20)]  # answered, so recorded
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert calls_in(db) == []  # none committed yet: all in the spool
        assert list(spool_dir(str(db)).glob("seg-*.jsonl"))

        with mcpd_serve(url, tmp_path, env=LINGER) as base:
            ids = audited(base, login(base))
        assert len(ids) == len(set(ids)) == 20
    assert sorted(calls_in(db)) == sorted(ids)


def test_the_audit_log_shows_a_call_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    settings = make_settings(f"sqlite:///{tmp_path / 'mcpd.db'}", tmp_path, call_spool_linger=60)
    with http_server("demo") as (up, _), serve_mcpd(settings) as m:
        m.server("remote", {"transport": "http", "http": {"url": f"http://127.0.0.1:{up}/mcp"}})

        async def call() -> str:
            async with mcp_session(mcp_url(m, "remote"), m.admin) as s:
                return text(await s.call_tool("add", {"a": 2, "b": 3}))

        assert run(call) == "5"
        assert calls_in(tmp_path / "mcpd.db") == []  # in the spool (the linger is a minute)
        events = m.ok("GET", "/auditevents", params={"action": "call"})["items"]
        assert [(e["name"], e["outcome"]) for e in events] == [("remote__add", "allow")]
        assert len(calls_in(tmp_path / "mcpd.db")) == 1


def _row(i: int) -> dict[str, Any]:
    who = Principal(subject="user:a@example.com", user="a@example.com")
    return audit.row(who, action="call", kind="tools", name=f"s__t{i}", detail={"i": i})


def test_a_refused_batch_stays_in_the_spool_and_is_committed_later(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'mcpd.db'}")
    migrate(engine)
    sessions = sessionmaker(engine)
    refusing = {"on": True}

    def maybe_refusing() -> Session:
        if refusing["on"]:
            raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))
        return sessions()

    log = CallLog(
        maybe_refusing,
        lambda: Spool(spool_dir(str(tmp_path / "mcpd.db")), max_bytes=1 << 20, fsync=False),
    )

    async def submit() -> None:
        for i in range(5):
            await log.submit(_row(i))

    anyio.run(submit)
    with pytest.raises(sa.exc.OperationalError, match="database is locked"):
        log.flush()
    assert calls_in(tmp_path / "mcpd.db") == []
    refusing["on"] = False
    assert log.flush() == 5
    assert log.flush() == 0
    with sessions() as s:
        stored = s.execute(sa.text("SELECT name, time, detail FROM audit_events ORDER BY id")).all()
    assert [r[0] for r in stored] == [f"s__t{i}" for i in range(5)]
    assert datetime.fromisoformat(stored[0][1]).year == datetime.now(UTC).year
    log.close()
    engine.dispose()


def test_a_full_spool_refuses_the_record_naming_its_setting(tmp_path: Path) -> None:
    log = CallLog(
        sessionmaker(),
        lambda: Spool(
            tmp_path / "calls", max_bytes=64 * 1024, fsync=False,
            limit_setting="MCPD_CALL_SPOOL_MAX_BYTES",
        ),
    )  # fmt: skip

    async def fill() -> int:
        n = 0
        with pytest.raises(SpoolFull, match="MCPD_CALL_SPOOL_MAX_BYTES"):
            while True:
                row = _row(n)
                row["detail"] = {"pad": "x" * 4000}
                await log.submit(row)
                n += 1
        return n

    assert 8 <= anyio.run(fill) <= 16
    log.close()


def test_a_process_that_records_no_call_opens_no_spool(tmp_path: Path) -> None:
    """(``mcpd bootstrap``, say: it builds a runtime, and must leave no spool behind.)"""
    settings = make_settings(f"sqlite:///{tmp_path / 'mcpd.db'}", tmp_path)
    engine = make_engine(settings.database_url)
    migrate(engine)
    rt = build_runtime(settings, engine)
    assert rt.call_log.flush() == 0  # (nothing to commit: the spool is opened to look)
    assert spool_dir(settings.database_url.removeprefix("sqlite:///")).exists()
    rt.call_log.close()
    engine.dispose()
    fresh = tmp_path / "other"
    settings = make_settings(f"sqlite:///{fresh / 'mcpd.db'}", tmp_path)
    engine = make_engine(settings.database_url)
    migrate(engine)
    build_runtime(settings, engine).call_log.close()
    engine.dispose()
    assert not spool_dir(str(fresh / "mcpd.db")).exists()


def test_readyz_says_when_the_spool_is_full(tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'mcpd.db'}", tmp_path,
        call_spool_linger=60, call_spool_max_bytes=64 * 1024,
    )  # fmt: skip
    with serve_mcpd(settings) as m:
        ready = httpx.get(f"{m.base}/readyz").json()
        assert ready == {"status": "ok", "database": "ok", "callSpoolPendingBytes": 0}
        spool = m.app.state.runtime.call_log.spool
        with pytest.raises(SpoolFull):  # (records not committed: the linger is a minute)
            for i in range(100):
                anyio.run(spool.append, {"i": i, "pad": "x" * 4000})
        r = httpx.get(f"{m.base}/readyz")
        assert r.status_code == 503
        assert r.json()["status"] == "unavailable"
        assert "MCPD_CALL_SPOOL_MAX_BYTES" in r.json()["callSpool"]
        assert r.json()["callSpoolPendingBytes"] > 60 * 1024
