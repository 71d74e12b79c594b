"""mcplocal's file cache, on real files: layout, bounds, restarts, bad keys, and several
threads and processes sharing one directory while eviction runs."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mcplocal.cache import DEFAULT_CACHE_DIR, CacheError, FileCache


def path_of(root: Path, key: str) -> Path:
    return root / key[:2] / key


def entries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def age(path: Path, seconds: float) -> None:
    """Make ``path`` look last used ``seconds`` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_round_trip_layout_and_idempotence(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b" / "cache"
    cache = FileCache(root)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    key = cache.put(b"hello")
    assert key == hashlib.sha256(b"hello").hexdigest()
    assert path_of(root, key).read_bytes() == b"hello"  # sharded by the first two hex chars
    assert cache.put(b"hello") == key and len(entries(root)) == 1
    assert cache.get(key) == b"hello"
    assert cache.put(b"") == hashlib.sha256(b"").hexdigest() and cache.get(cache.put(b"")) == b""
    obj = {"b": [1, 2.5, None, "ü"], "a": {"x": True}}
    jkey = cache.put_json(obj)
    assert cache.get_json(jkey) == obj
    assert cache.put_json({"a": {"x": True}, "b": [1, 2.5, None, "ü"]}) == jkey  # canonical
    assert cache.get("0" * 64) is None and cache.get_json("0" * 64) is None
    with pytest.raises(json.JSONDecodeError):  # content put() as bytes, not as JSON
        cache.get_json(cache.put(b"not json"))
    assert Path("/var/lib/mcplocal/cache") == DEFAULT_CACHE_DIR


def test_memos_are_kept_apart_from_content(tmp_path: Path) -> None:
    cache = FileCache(tmp_path)
    memo = hashlib.sha256(b"the input").hexdigest()
    assert cache.get_memo(memo) is None
    cache.put_memo(memo, b"derived")
    assert cache.get_memo(memo) == b"derived"
    assert cache.get(memo) is None  # not content: its bytes do not hash to its key
    assert FileCache(tmp_path).get_memo(memo) == b"derived"


def test_a_restart_finds_entries_and_their_size(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, max_bytes=100_000)
    keys = [cache.put(bytes([i]) * 1000) for i in range(8)]
    for i, key in enumerate(keys):  # oldest first
        age(path_of(tmp_path, key), 100 - i)
    again = FileCache(tmp_path, max_bytes=100_000)
    assert all(again.get(k) == bytes([i]) * 1000 for i, k in enumerate(keys))
    # a smaller bound on restart: the scan at start counts what is there and evicts
    for i, key in enumerate(keys):
        age(path_of(tmp_path, key), 100 - i)
    small = FileCache(tmp_path, max_bytes=3000)
    assert [small.get(k) is not None for k in keys] == [False] * 5 + [True] * 3


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "0" * 63,
        "0" * 65,
        "A" * 64,
        "g" * 64,
        "0" * 64 + "\n",
        " " + "0" * 63,
        "../" + "0" * 61,
        "0" * 32 + "/" + "0" * 31,
        "0" * 64 + ".memo",
        "\uff10" * 64,  # fullwidth digits are not hex
        None,
        b"0" * 64,
        0,
    ],
)
def test_bad_keys_are_refused_before_any_path_is_built(tmp_path: Path, bad: Any) -> None:
    cache = FileCache(tmp_path / "c")
    before = sorted(tmp_path.rglob("*"))
    for call in (cache.get, cache.get_json, cache.get_memo, lambda k: cache.put_memo(k, b"x")):
        with pytest.raises(ValueError, match="64 lowercase hex"):
            call(bad)
    assert sorted(tmp_path.rglob("*")) == before


def test_unusable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    for root in (blocker, blocker / "cache"):
        with pytest.raises(CacheError) as info:
            FileCache(root)
        message = str(info.value)
        assert f"`{root}`" in message and "MCPLOCAL_CACHE_DIR" in message, message
    with pytest.raises(ValueError, match="max_bytes"):
        FileCache(tmp_path / "c", max_bytes=0)
    with pytest.raises(ValueError, match="max_age_seconds"):
        FileCache(tmp_path / "c", max_age_seconds=-1)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through a read-only mode")
def test_read_only_directory_is_a_clear_error(tmp_path: Path) -> None:  # pragma: no cover
    (tmp_path / "ro").mkdir(mode=0o500)
    with pytest.raises(CacheError, match="cannot be created or written"):
        FileCache(tmp_path / "ro")


def test_age_bound(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, max_age_seconds=3600)
    old, fresh, used = cache.put(b"old"), cache.put(b"fresh"), cache.put(b"used")
    age(path_of(tmp_path, old), 7200)
    age(path_of(tmp_path, used), 3000)
    assert cache.get(old) is None and not path_of(tmp_path, old).exists()
    assert cache.get(used) == b"used"  # a read makes it recently used again
    assert time.time() - path_of(tmp_path, used).stat().st_mtime < 60
    age(path_of(tmp_path, fresh), 7200)
    assert cache.evict() == len(b"fresh") and not path_of(tmp_path, fresh).exists()
    assert cache.get(used) == b"used"
    age(path_of(tmp_path, used), 7200)
    assert cache.put(b"used") == used and cache.get(used) == b"used"  # put refreshes too


def test_size_bound_evicts_least_recently_used(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, max_bytes=4000)
    keys = [cache.put(bytes([i]) * 1000) for i in range(4)]
    for i, key in enumerate(keys):
        age(path_of(tmp_path, key), 100 - i)  # 0 is the oldest
    assert cache.get(keys[0]) is not None  # ... and now the most recently used
    assert cache.evict() == 0  # 4000 bytes: at the bound, not over it
    cache.put(b"\xff" * 1500)  # over: 1 and 2 go (oldest), 0 stays (read just now)
    assert [cache.get(k) is not None for k in keys] == [True, False, False, True]
    assert sum(p.stat().st_size for p in entries(tmp_path)) <= 4000
    for i in range(20):
        cache.put(os.urandom(700) + bytes([i]))
        assert sum(p.stat().st_size for p in entries(tmp_path)) <= 4000


def test_eviction_tolerates_vanishing_files_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = FileCache(tmp_path, max_bytes=2500)
    keys = [cache.put(bytes([i]) * 1000) for i in range(2)]
    scan = cache._scan

    def scan_then_vanish(now: float) -> list[tuple[float, int, str]]:
        found = scan(now)
        for key in keys:  # another replica removes them between our scan and our unlink
            path_of(tmp_path, key).unlink()
        return [(e[0] - 10**7, *e[1:]) for e in found]  # and they looked expired

    monkeypatch.setattr(cache, "_scan", scan_then_vanish)
    assert cache.evict() == 0  # nothing freed by us, and no error
    monkeypatch.setattr(cache, "_scan", scan)
    # a temporary file of a writer that died is removed once old; a fresh one is not;
    # files that are not the cache's are neither counted nor touched
    shard = tmp_path / "ab"
    shard.mkdir(exist_ok=True)
    (shard / ".tmp-dead").write_bytes(b"x" * 5000)
    age(shard / ".tmp-dead", 7200)
    (shard / ".tmp-live").write_bytes(b"x" * 5000)
    (shard / "README").write_bytes(b"x" * 5000)
    (tmp_path / "notes.txt").write_bytes(b"x" * 5000)
    kept = cache.put(b"kept")
    cache.evict()
    assert not (shard / ".tmp-dead").exists() and (shard / ".tmp-live").exists()
    assert (shard / "README").exists() and (tmp_path / "notes.txt").exists()
    assert cache.get(kept) == b"kept"


def test_a_torn_file_is_never_returned(tmp_path: Path) -> None:
    cache = FileCache(tmp_path)
    key = cache.put(b"a whole file")
    path_of(tmp_path, key).write_bytes(b"a who")  # e.g. a crash without the rename
    assert cache.get(key) is None and not path_of(tmp_path, key).exists()
    assert cache.put(b"a whole file") == key and cache.get(key) == b"a whole file"


def test_the_whole_directory_removed_under_a_running_cache(tmp_path: Path) -> None:
    root = tmp_path / "c"
    cache = FileCache(root)
    key = cache.put(b"data")
    for p in entries(root):
        p.unlink()
    for d in sorted(root.rglob("*"), reverse=True):
        d.rmdir()
    root.rmdir()
    assert cache.get(key) is None and cache.evict() == 0
    assert cache.put(b"data") == key and cache.get(key) == b"data"


# -- concurrency ----------------------------------------------------------------------------

SHARED = [f"shared-{i}".encode() * (200 + 50 * i) for i in range(12)]


def _worker(root: str, seed: int, seconds: float) -> dict[str, int]:
    """For ``seconds``, put and get shared and random entries; check every read, through the
    cache and of the raw file (a partial file would show there first)."""
    rng = random.Random(seed)
    cache = FileCache(Path(root), max_bytes=40_000)
    seen = {"hits": 0, "misses": 0, "raw": 0}
    mine: list[tuple[str, bytes]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        data = rng.choice(SHARED) if rng.random() < 0.6 else rng.randbytes(rng.randint(1, 6000))
        key = cache.put(data)
        mine.append((key, data))
        key, data = rng.choice(mine[-20:])
        got = cache.get(key)
        if got is None:
            seen["misses"] += 1
        else:
            assert got == data, f"{key}: {len(got)} bytes instead of {len(data)}"
            seen["hits"] += 1
        try:
            raw = (Path(root) / key[:2] / key).read_bytes()
        except FileNotFoundError:
            continue
        assert raw == data, f"{key}: a partial file of {len(raw)} bytes, not {len(data)}"
        seen["raw"] += 1
    return seen


def _process(root: str, seed: int, seconds: float, ready: Any, go: Any, out: Any) -> None:
    ready.put(seed)
    go.wait(60)
    out.put(_worker(root, seed, seconds))


def test_threads_and_processes_share_one_directory(tmp_path: Path) -> None:
    root = str(tmp_path / "shared")
    FileCache(Path(root), max_bytes=40_000)
    ctx = multiprocessing.get_context("spawn")
    ready, go, out = ctx.Queue(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_process, args=(root, s, 1.0, ready, go, out)) for s in (1, 2)]
    for p in procs:
        p.start()
    for _ in procs:  # everyone starts together: the processes are up before the threads
        ready.get(timeout=60)
    errors: list[BaseException] = []
    results: list[dict[str, int]] = []
    stop = threading.Event()

    def thread(seed: int) -> None:
        try:
            results.append(_worker(root, seed, 1.0))
        except BaseException as exc:  # reported below
            errors.append(exc)

    def evictor() -> None:
        cache = FileCache(Path(root), max_bytes=20_000)  # a stricter replica
        try:
            while not stop.is_set():
                cache.evict()
                time.sleep(0.002)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=thread, args=(s,)) for s in (3, 4, 5)]
    threads.append(threading.Thread(target=evictor))
    go.set()
    for t in threads:
        t.start()
    for t in threads[:-1]:
        t.join(90)
    for p in procs:
        p.join(90)
    stop.set()
    threads[-1].join(10)
    assert not errors, errors
    assert [p.exitcode for p in procs] == [0, 0]
    results += [out.get(timeout=5) for _ in procs]
    assert sum(r["hits"] for r in results) > 0 and sum(r["raw"] for r in results) > 0
    assert not [p for p in Path(root).rglob(".tmp-*")]  # no writer left a temporary file
    final = FileCache(Path(root), max_bytes=40_000)
    assert sum(p.stat().st_size for p in entries(Path(root))) <= 40_000
    for path in entries(Path(root)):  # whatever is left is whole
        assert final.get(path.name) == path.read_bytes()
