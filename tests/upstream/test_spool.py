"""The audit spool (upstream/spool.py) on real files: records on disk before ``append``
returns, many per write, kept until sent, adopted after a crash, bounded."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from upstream.spool import Spool, SpoolFull


def record(n: int) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "server": "s", "tool": "t", "n": n}


async def append_all(spool: Spool, records: list[dict[str, Any]]) -> None:
    async with anyio.create_task_group() as tg:
        for r in records:
            tg.start_soon(spool.append, r)


def drain(spool: Spool, limit: int = 1000) -> list[dict[str, Any]]:
    got = []
    while True:
        seg, records, nbytes = spool.unsent(limit)
        if seg is None:
            return got
        got += [json.loads(line) for line in records]
        spool.sent(seg, nbytes)


def test_records_are_on_disk_many_per_write_and_gone_once_sent(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10 * 1024 * 1024)
    records = [record(i) for i in range(200)]
    anyio.run(append_all, spool, records)
    on_disk = b"".join(p.read_bytes() for p in tmp_path.glob("seg-*.jsonl"))
    assert on_disk.count(b"\n") == 200  # written before append returned
    assert spool.writes < 200  # grouped: concurrent records share a write (and fsync)
    assert {r["id"] for r in drain(spool, 64)} == {r["id"] for r in records}
    assert spool.pending == 0 and spool.bytes == 0
    assert not list(tmp_path.glob("seg-*.jsonl"))  # sent: deleted
    spool.close()


def test_a_dead_writer_s_records_are_adopted_and_a_torn_line_skipped(tmp_path: Path) -> None:
    first = Spool(tmp_path, max_bytes=10 * 1024 * 1024)
    records = [record(i) for i in range(10)]
    anyio.run(append_all, first, records)
    seg, sent, nbytes = first.unsent(3)
    assert len(sent) == 3
    assert seg is not None
    first.sent(seg, nbytes)  # 3 sent; the process then dies before more
    live = Spool(tmp_path, max_bytes=10 * 1024 * 1024)
    assert drain(live) == []  # the first one still holds its segment (flock)
    (path,) = tmp_path.glob("seg-*.jsonl")
    with path.open("ab") as f:
        f.write(b'{"id": "torn')  # a write cut short by the crash
    first.close()  # what a kill -9 leaves: the file, no lock
    assert live.adopt() == 10
    again = drain(live)
    # the mark was in memory only: everything is sent again, mcpd keeps each id once
    assert [r["id"] for r in again] == [r["id"] for r in records]
    assert not list(tmp_path.glob("seg-*.jsonl"))
    live.close()


def test_a_full_spool_refuses_records_until_some_are_sent(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=64 * 1024)
    big = {"id": str(uuid.uuid4()), "pad": "x" * 8000}

    async def fill() -> int:
        n = 0
        with pytest.raises(SpoolFull, match="MCPLOCAL_AUDIT_SPOOL_MAX_BYTES"):
            while True:
                await spool.append(big)
                n += 1
        return n

    n = anyio.run(fill)
    assert 4 <= n <= 8 and spool.full and spool.refused == 1
    drain(spool)
    assert not spool.full
    anyio.run(spool.append, big)
    spool.close()


def test_segments_roll_and_the_oldest_is_sent_first(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr("upstream.spool.SEGMENT_BYTES", 4096)
    spool = Spool(tmp_path, max_bytes=10 * 1024 * 1024, fsync=False)

    async def one_by_one() -> None:
        for i in range(100):
            await spool.append(record(i))

    anyio.run(one_by_one)
    assert len(list(tmp_path.glob("seg-*.jsonl"))) >= 2
    assert [r["n"] for r in drain(spool, 7)] == list(range(100))
    assert os.listdir(tmp_path) == []
    spool.close()


def test_a_batch_is_bounded_in_bytes_too_and_a_big_record_goes_alone(tmp_path: Path) -> None:
    """mcpd caps a request's body (413 past it): a batch stops before the byte bound, and
    a record bigger than the bound still goes (alone), never stuck."""
    spool = Spool(tmp_path, max_bytes=10 * 1024 * 1024)
    big = {**record(0), "error": "x" * 3000}
    records = [record(i) for i in range(10, 49)]  # all of one size
    anyio.run(append_all, spool, [big])
    anyio.run(append_all, spool, records)
    size = len(json.dumps(records[0], separators=(",", ":"))) + 1
    seen = []
    while True:
        seg, lines, nbytes = spool.unsent(1000, max_bytes=10 * size)
        if seg is None:
            break
        assert len(lines) == 1 or nbytes <= 10 * size
        assert nbytes == sum(len(line) + 1 for line in lines)
        seen.append(len(lines))
        spool.sent(seg, nbytes)
    assert seen[0] == 1  # the big one, alone: it alone is over the bound
    assert sum(seen) == 40 and max(seen) == 10
