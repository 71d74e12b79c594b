"""Audit delivery into a real mcpd (over loopback HTTP): records spooled one after another
within the linger go to mcpd in one request, each recorded once; with no linger each goes
as soon as it can."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcplocal.audit import AuditReporter, CallRecord
from tests.mcpd.test_instances import Mcpd, make_settings, serve_mcpd
from tests.mcplocal.test_audit_delivery import calls


@pytest.fixture
def mcpd(tmp_path: Path) -> Iterator[Mcpd]:
    with serve_mcpd(make_settings(f"sqlite:///{tmp_path / 'mcpd.db'}", tmp_path)) as m:
        yield m


class Counted(AuditReporter):
    """The reporter, keeping the size of each batch mcpd answered."""

    batches: list[int]

    async def _send(self, mcpd: Any, lines: list[bytes]) -> None:
        await super()._send(mcpd, lines)
        self.batches.append(len(lines))


def record(n: int) -> CallRecord:
    return CallRecord("demo", "add", "", "allow", 1.0, user="dev", request_id=f"r{n}")


def deliver(m: Mcpd, spool: Path, linger: float, n: int, gap: float) -> Counted:
    """``n`` records reported ``gap`` s apart while the reporter runs; back once mcpd has
    answered for all of them."""
    proxy = m.login("mcplocal@svc", "action:proxy")
    r = Counted(m.base, proxy, spool, linger=linger)
    r.batches = []

    async def run() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(r.run)
            for i in range(n):
                await r.report(record(i))
                await anyio.sleep(gap)
            with anyio.fail_after(30):
                while sum(r.batches) < n:
                    await anyio.sleep(0.02)
            tg.cancel_scope.cancel()

    anyio.run(run)
    r.spool.close()
    return r


def test_records_within_the_linger_share_one_request(mcpd: Mcpd, tmp_path: Path) -> None:
    r = deliver(mcpd, tmp_path / "spool", linger=3.0, n=10, gap=0.01)
    assert r.batches == [10]  # ten records 10 ms apart, one request
    got = calls(mcpd)
    assert sorted(e["requestId"] for e in got) == sorted(f"r{i}" for i in range(10))
    assert r.spool.pending == 0


def test_without_a_linger_each_record_goes_at_once(mcpd: Mcpd, tmp_path: Path) -> None:
    r = deliver(mcpd, tmp_path / "spool", linger=0.0, n=3, gap=1.0)
    assert r.batches == [1, 1, 1]  # each waited for nobody
    assert len(calls(mcpd)) == 3
