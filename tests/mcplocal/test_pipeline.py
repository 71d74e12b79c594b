"""Proxy models and their file cache, on real files and against a real local
OpenAI-compatible HTTP server (the summarizer's wire protocol)."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest

from mcplocal.cache import CacheError, FileCache
from mcplocal.names import NameMap, exposed_name
from mcplocal.pipeline import (
    API_KEY_ENV,
    PAGE_TOOL,
    SUMMARIZERS_ENV,
    Pipeline,
    ProxyModel,
    configured_summarizers,
    page_tool,
    parse_summarizers,
)

# -- names ----------------------------------------------------------------------------------


def test_exposed_names_are_safe_unique_and_stable() -> None:
    assert exposed_name("time", "get_current_time") == "time__get_current_time"
    dotted = exposed_name("fs", "read.file")
    long = exposed_name("a-very-long-server-name-for-testing", "and_a_very_long_tool_name_too_x")
    for name in (dotted, long):
        assert len(name) <= 64 and all(c.isalnum() or c in "_-" for c in name)
    assert dotted != exposed_name("fs", "read_file")  # `.` vs `_`: still two names
    assert long == exposed_name(
        "a-very-long-server-name-for-testing", "and_a_very_long_tool_name_too_x"
    )
    # over 64 characters: the server's name is cut first, the tool's stays recognisable
    longer = exposed_name("s" * 80, "get_current_time")
    assert len(longer) == 64 and "__get_current_time_" in longer
    assert exposed_name("srv", "t" * 100).startswith("srv__ttt")
    names = NameMap()
    # `a__b` + `c` and `a` + `b__c` give the same text: the map, not a split, tells them apart
    first, second = names.add("a__b", "c"), names.add("a", "b__c")
    assert names.resolve(second) == ("a", "b__c")
    assert first == second or names.resolve(first) == ("a__b", "c")


# -- the cache --------------------------------------------------------------------------------


def test_cache_round_trip_restart_and_bad_keys(tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "c")
    key = cache.put(b"hello")
    assert cache.put(b"hello") == key and len(key) == 64
    assert cache.get(key) == b"hello"
    assert FileCache(tmp_path / "c").get(key) == b"hello"  # survives a restart
    assert cache.get("0" * 64) is None
    for bad in ("../../etc/passwd", "ABC", "0" * 63, "g" * 64):
        with pytest.raises(ValueError, match="64 lowercase hex"):
            cache.get(bad)
    assert cache.get_json(cache.put_json({"a": [1, 2]})) == {"a": [1, 2]}


def test_cache_bounds_size_and_age(tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "c", max_bytes=10_000, max_age_seconds=3600)
    keys = []
    for i in range(30):
        keys.append(cache.put(bytes([i]) * 1000))
        time.sleep(0.01)  # distinct mtimes: least recently used goes first
    total = sum(p.stat().st_size for p in (tmp_path / "c").rglob("*") if p.is_file())
    assert total <= 10_000
    assert cache.get(keys[-1]) is not None and cache.get(keys[0]) is None
    old = cache.put(b"old")
    path = tmp_path / "c" / old[:2] / old
    os.utime(path, (time.time() - 7200, time.time() - 7200))
    assert cache.get(old) is None and not path.exists()


def test_cache_refuses_an_unusable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(CacheError, match="MCPLOCAL_CACHE_DIR"):
        FileCache(blocker / "cache")


def _hammer(root: str, seed: int, rounds: int) -> None:
    cache = FileCache(Path(root), max_bytes=200_000)
    for i in range(rounds):
        data = f"{seed % 3}-{i % 50}".encode() * 500
        key = cache.put(data)
        got = cache.get(key)
        assert got is None or got == data  # evicted by another writer, or whole: never partial


def test_cache_is_safe_with_concurrent_writers(tmp_path: Path) -> None:
    root = str(tmp_path / "shared")
    FileCache(Path(root))
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(root, s, 300)) for s in range(2)]
    for p in procs:
        p.start()
    threads = [threading.Thread(target=_hammer, args=(root, s, 300)) for s in range(2, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0


# -- the pipeline ----------------------------------------------------------------------------


class _Llm(BaseHTTPRequestHandler):
    calls: list[dict[str, Any]] = []
    fail = False

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).calls.append({"path": self.path, "auth": self.headers.get("authorization"),
                                 "body": body})  # fmt: skip
        if type(self).fail:
            self.send_response(500)
            self.end_headers()
            return
        text = body["messages"][-1]["content"]
        answer = {
            "choices": [{"message": {"role": "assistant", "content": f"SUMMARY({len(text)})"}}]
        }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def llm() -> Iterator[str]:
    _Llm.calls, _Llm.fail = [], False
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Llm)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


def texts(r: types.CallToolResult) -> list[str]:
    return [c.text for c in r.content if isinstance(c, types.TextContent)]


def run_pipeline(tmp_path: Path, fn: Any) -> Any:
    async def main() -> Any:
        async with httpx2.AsyncClient() as http:
            return await fn(Pipeline(FileCache(tmp_path / "cache"), http))

    return anyio.run(main)


def test_paginate_round_trip(tmp_path: Path) -> None:
    text = "".join(f"line {i}\n" for i in range(2000))
    model = ProxyModel.from_options("paginate", {"pageChars": 1000})

    async def fn(p: Pipeline) -> str:
        assert await p.apply(model, "s", "t", result("short")) == result("short")
        page = await p.apply(model, "s", "t", result(text))
        out = ""
        for _ in range(100):
            *body, note = texts(page)
            out += "".join(body)
            if "the last" in note:
                break
            cursor = note.split('"cursor": "')[1].split('"')[0]
            page = await p.next_page(cursor)
        assert (await p.next_page("nonsense")).is_error
        assert (await p.next_page("0" * 64 + ":0")).is_error
        return out

    assert run_pipeline(tmp_path, fn) == text


def test_summarize_caches_and_falls_back(
    tmp_path: Path, llm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCPLOCAL_SUMMARIZE_API_KEY", "sk-test-key")
    model = ProxyModel.from_options(
        "summarize", {"summarizer": "llm", "pageChars": 100}, {"llm": llm}
    )
    long = "x" * 5000

    async def fn(p: Pipeline) -> list[types.CallToolResult]:
        return [await p.apply(model, "s", "t", result(long)) for _ in range(2)]

    first, second = run_pipeline(tmp_path, fn)
    assert texts(first)[0].startswith("SUMMARY(") and PAGE_TOOL in texts(first)[-1]
    assert texts(second) == texts(first)
    assert len(_Llm.calls) == 1  # the second answer came from the cache
    assert _Llm.calls[0]["path"] == "/v1/chat/completions"
    assert _Llm.calls[0]["auth"] == "Bearer sk-test-key"
    assert all("sk-test-key" not in t for t in texts(first))

    _Llm.fail = True

    async def failing(p: Pipeline) -> types.CallToolResult:
        return await p.apply(model, "s", "t", result("y" * 5000))

    fallback = run_pipeline(tmp_path, failing)
    assert not fallback.is_error and "summarizer failed" in texts(fallback)[-1]
    assert texts(fallback)[0] == "y" * 100  # the first page instead
    down = ProxyModel.from_options(
        "summarize", {"summarizer": "down"}, {"down": "http://127.0.0.1:9/v1"}
    )
    assert (
        "summarizer failed"
        in texts(run_pipeline(tmp_path, lambda p: p.apply(down, "s", "t", result("z" * 50_000))))[
            -1
        ]
    )


def test_proxy_model_options_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown proxy model"):
        ProxyModel.from_options("shrink", {})
    with pytest.raises(ValueError, match="summarizer"):
        ProxyModel.from_options("summarize", {})
    with pytest.raises(ValueError, match="unknown proxy options"):
        ProxyModel.from_options("paginate", {"pages": 3})
    with pytest.raises(ValueError, match="positive"):
        ProxyModel.from_options("paginate", {"pageChars": 0})


# -- proxy models in depth: every page, every bad cursor, every summarizer failure ------------

SECRET = "sk-secret-summarizer-key-0123456789"
_LINE = re.compile(
    r'\[page (\d+) of (\d+): call tool mcplocal__next_page with \{"cursor": "([0-9a-f]{64}:\d+)"\}'
    r" for the next page\]"
)


class _SummarizerServer(ThreadingHTTPServer):
    daemon_threads = True
    mode = "ok"  # ok, 500, malformed, notjson, slow
    calls: list[dict[str, Any]]


class _SummarizerHandler(BaseHTTPRequestHandler):
    """An OpenAI-compatible ``/v1/chat/completions`` with a deterministic summary."""

    server: _SummarizerServer

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.calls.append(
            {"path": self.path, "auth": self.headers.get("authorization"), "body": body}
        )
        mode = self.server.mode
        if mode == "slow":
            time.sleep(0.6)
        if mode == "500":
            self._send(500, b'{"error": {"message": "out of memory"}}')
        elif mode == "malformed":
            self._send(200, json.dumps({"choices": []}).encode())
        elif mode == "notjson":
            self._send(200, b"<html>gateway</html>")
        else:
            user = body["messages"][-1]["content"]
            message = {"role": "assistant", "content": f"SUMMARY of {len(user)} chars: id=42"}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            answer = {"object": "chat.completion", "model": body["model"], "choices": [choice]}
            self._send(200, json.dumps(answer).encode())

    def _send(self, status: int, data: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (the timeout test)
            pass

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def summarizer() -> Iterator[_SummarizerServer]:
    server = _SummarizerServer(("127.0.0.1", 0), _SummarizerHandler)
    server.calls = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def _url(server: _SummarizerServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _texts(r: types.CallToolResult) -> list[str]:
    return [c.text for c in r.content if isinstance(c, types.TextContent)]


def _run(root: Path, fn: Any) -> Any:
    async def main() -> Any:
        async with httpx2.AsyncClient(trust_env=False) as http:
            return await fn(Pipeline(FileCache(root), http))

    return anyio.run(main)


async def _read_all(p: Pipeline, first: types.CallToolResult) -> tuple[str, int]:
    """Follow the continuation lines from ``first`` to the last page: (text, pages)."""
    out, page, n = "", first, 1
    while True:
        *body, line = _texts(page)
        out += body[0]
        match = _LINE.fullmatch(line)
        if match is None:
            assert line == f"[page {n} of {n}: the last page]", line
            return out, n
        assert int(match.group(1)) == n
        n += 1
        assert match.group(3).endswith(f":{n}")
        page = await p.next_page(match.group(3))
        assert not page.is_error, _texts(page)


def test_proxy_model_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    # the deprecated summarizeUrl, accepted as one of the operator's endpoints (issue 13)
    monkeypatch.setenv(SUMMARIZERS_ENV, "llm=https://llm.example.com:8443/v1/")
    assert ProxyModel.from_options("passthrough", {}) == ProxyModel()
    options = {
        "pageChars": 500,
        "summarizeUrl": "https://llm.example.com:8443/v1/",
        "summarizeModel": "qwen",
        "summarizeMaxInputChars": 9000,
        "summarizeTimeout": 2.5,
    }
    model = ProxyModel.from_options("summarize", options)
    assert model == ProxyModel("summarize", 500, "https://llm.example.com:8443/v1/", "qwen",
                               None, 9000, 2.5)  # fmt: skip
    assert ProxyModel.from_options("paginate", {"pageChars": None}).page_chars == 20_000
    monkeypatch.setenv(API_KEY_ENV, SECRET)
    keyed = ProxyModel.from_options("summarize", options)
    assert keyed.summarize_api_key == SECRET and SECRET not in repr(keyed)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("shrink", {}, "unknown proxy model `shrink`"),
        ("Paginate", {}, "unknown proxy model"),
        ("paginate", {"pageChars": 0}, "`pageChars` must be a positive integer"),
        ("paginate", {"pageChars": -5}, "`pageChars` must be a positive integer"),
        ("paginate", {"pageChars": "100"}, "`pageChars` must be a positive integer"),
        ("paginate", {"pageChars": True}, "`pageChars` must be a positive integer"),
        ("paginate", {"pageChars": 10.5}, "`pageChars` must be a positive integer"),
        ("paginate", {"summarizeMaxInputChars": 0}, "`summarizeMaxInputChars` must be"),
        ("paginate", {"summarizeTimeout": 0}, "`summarizeTimeout` must be a positive"),
        ("paginate", {"summarizeTimeout": float("inf")}, "`summarizeTimeout` must be"),
        ("paginate", {"summarizeTimeout": "5"}, "`summarizeTimeout` must be"),
        ("paginate", {"summarizeModel": ""}, "`summarizeModel` must be a non-empty"),
        ("paginate", {"page_chars": 100}, "unknown proxy options `page_chars`"),
        ("summarize", {}, "summarize needs `summarizer`"),
        ("summarize", {"summarizeUrl": None}, "summarize needs `summarizer`"),
        ("summarize", {"summarizeUrl": "ftp://llm/v1"}, "must be an http(s) URL"),
        ("summarize", {"summarizeUrl": "llm:8000/v1"}, "must be an http(s) URL"),
        ("summarize", {"summarizeUrl": "http:///v1"}, "must be an http(s) URL"),
        ("summarize", {"summarizeUrl": "http://llm:99999/v1"}, "must be an http(s) URL"),
        ("summarize", {"summarizeUrl": "http://l lm/v1"}, "without spaces"),
        ("summarize", {"summarizeUrl": 8000}, "`summarizeUrl` must be a string"),
        ("summarize", {"summarizeUrl": "http://u:p@llm/v1"}, "must not carry credentials"),
        ("summarize", {"summarizeUrl": "http://llm/v1?key=1"}, "without query"),
        ("summarize", {"summarizeApiKey": "sk-x"}, API_KEY_ENV),
        ("paginate", {"apiKey": "sk-x"}, API_KEY_ENV),
    ],
)
def test_proxy_model_options_refused(name: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        ProxyModel.from_options(name, options)
    assert "sk-x" not in str(info.value)


def test_page_tool() -> None:
    tool = page_tool()
    assert tool.name == PAGE_TOOL == "mcplocal__next_page"
    schema = tool.input_schema
    assert schema["type"] == "object" and schema["required"] == ["cursor"]
    assert schema["properties"]["cursor"]["type"] == "string"


def test_what_is_left_alone(tmp_path: Path) -> None:
    long = types.CallToolResult(content=[types.TextContent(type="text", text="x" * 500)])
    failed = long.model_copy(update={"is_error": True})
    short = types.CallToolResult(content=[types.TextContent(type="text", text="x" * 100)])
    paginate = ProxyModel("paginate", page_chars=100)
    summarize = ProxyModel("summarize", page_chars=100, summarize_url="http://127.0.0.1:9/v1")

    async def fn(p: Pipeline) -> None:
        assert await p.apply(ProxyModel(), "s", "t", long) is long
        for model in (paginate, summarize):
            assert await p.apply(model, "s", "t", failed) is failed
            assert await p.apply(model, "s", "t", short) is short

    _run(tmp_path / "cache", fn)
    assert not list((tmp_path / "cache").rglob("*/*"))  # and nothing was kept


def test_paginate_every_page(tmp_path: Path) -> None:
    parts = ["".join(f"línea {i} — ✓ 😀\n" for i in range(700)), "second block", "∑" * 333]
    text = "\n".join(parts)  # several text blocks are read as one text, one per line
    image = types.ImageContent(type="image", data="aGVsbG8=", mime_type="image/png")
    original = types.CallToolResult(
        content=[types.TextContent(type="text", text=parts[0]), image]
        + [types.TextContent(type="text", text=t) for t in parts[1:]],
        structured_content={"rows": 700},
    )
    model = ProxyModel.from_options("paginate", {"pageChars": 997})
    pages = -(-len(text) // 997)

    async def fn(p: Pipeline) -> tuple[types.CallToolResult, str, int, str]:
        first = await p.apply(model, "fs", "read", original)
        cursor = _LINE.fullmatch(_texts(first)[-1])
        assert cursor is not None
        return first, *await _read_all(p, first), cursor.group(3)

    first, got, n, cursor = _run(tmp_path, fn)
    assert got == text and n == pages > 10
    assert [type(c) for c in first.content] == [types.TextContent, types.ImageContent,
                                                types.TextContent]  # fmt: skip
    assert first.content[1] == image and first.structured_content == {"rows": 700}
    assert _texts(first)[0] == text[:997] and not first.is_error
    key = cursor.split(":")[0]
    stored = FileCache(tmp_path).get_json(key)
    assert stored == {"server": "fs", "tool": "read", "text": text, "page_chars": 997}

    async def later(p: Pipeline) -> tuple[types.CallToolResult, types.CallToolResult]:
        return await p.next_page(f"{key}:{pages - 1}"), await p.next_page(f"{key}:{pages}")

    # a restarted mcplocal (or another replica on the same directory) serves the same pages
    before_last, last = _run(tmp_path, later)
    assert _texts(before_last)[0] == text[(pages - 2) * 997 : (pages - 1) * 997]
    assert _texts(before_last)[1].endswith(f'"{key}:{pages}"}} for the next page]')
    assert _texts(last) == [text[(pages - 1) * 997 :], f"[page {pages} of {pages}: the last page]"]
    assert len(last.content) == 2  # later pages are text only


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "nonsense",
        "0" * 64,
        ":1",
        "0" * 64 + ":0",
        "0" * 64 + ":01",
        "0" * 64 + ":-1",
        "0" * 64 + ":+1",
        "0" * 64 + ":1 ",
        " " + "0" * 64 + ":1",
        "0" * 64 + ":1\n",
        "0" * 64 + ":1:2",
        "0" * 64 + ":1.0",
        "0" * 64 + ":" + "9" * 10,
        "A" * 64 + ":1",
        "0" * 63 + ":1",
        "0" * 65 + ":1",
        "../../etc/passwd:1",
        "x" * 10_000,
    ],
)
def test_malformed_cursors(tmp_path: Path, cursor: str) -> None:
    got = _run(tmp_path, lambda p: p.next_page(cursor))
    assert got.is_error and "is not a cursor from mcplocal" in _texts(got)[0]
    assert len(_texts(got)[0]) < 300
    assert not list(tmp_path.rglob("*/*"))


def test_unknown_expired_and_foreign_cursors(tmp_path: Path) -> None:
    cache = FileCache(tmp_path)
    record = {"server": "s", "tool": "t", "text": "abcdefghij", "page_chars": 4}
    key = cache.put_json(record)
    blob, other = cache.put(b"\x00\xff binary"), cache.put_json({"text": "no server"})

    async def fn(p: Pipeline) -> list[types.CallToolResult]:
        return [
            await p.next_page(f"{key}:3"),
            await p.next_page(f"{key}:4"),
            await p.next_page(f"{'0' * 64}:1"),
            await p.next_page(f"{blob}:1"),
            await p.next_page(f"{other}:1"),
            await p.next_page(f"{key}:1", allow=lambda server, tool: (server, tool) == ("s", "t")),
            await p.next_page(f"{key}:1", allow=lambda server, tool: False),
        ]

    last, beyond, unknown, binary, foreign, allowed, refused = _run(tmp_path, fn)
    assert _texts(last) == ["ij", "[page 3 of 3: the last page]"] and not last.is_error
    assert beyond.is_error and _texts(beyond) == ["there is no page 4: the result has 3"]
    for r in (unknown, binary, foreign, refused):
        assert r.is_error and "expired" in _texts(r)[0] and "call the tool again" in _texts(r)[0]
    assert _texts(allowed)[0] == "abcd" and not allowed.is_error
    os.utime(tmp_path / key[:2] / key, (0, 0))  # older than the age bound: expired
    assert _run(tmp_path, lambda p: p.next_page(f"{key}:1")).is_error


def test_summarize(
    tmp_path: Path,
    summarizer: _SummarizerServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(API_KEY_ENV, SECRET)
    monkeypatch.setenv(SUMMARIZERS_ENV, f"s={_url(summarizer)}")
    options = {"summarizeUrl": _url(summarizer), "summarizeModel": "qwen", "pageChars": 1000}
    model = ProxyModel.from_options("summarize", options)
    text = "".join(f"row {i}: ok\n" for i in range(1000))
    image = types.ImageContent(type="image", data="aGVsbG8=", mime_type="image/png")
    original = types.CallToolResult(content=[types.TextContent(type="text", text=text), image])

    async def fn(p: Pipeline) -> tuple[types.CallToolResult, str, types.CallToolResult]:
        first = await p.apply(model, "db", "query", original)
        cursor = re.search(r'"cursor": "([0-9a-f]{64}:1)"', _texts(first)[-1])
        assert cursor is not None
        page = await p.next_page(cursor.group(1))
        full, _ = await _read_all(p, page)
        return first, full, await p.apply(model, "db", "query", original)

    first, full, again = _run(tmp_path, fn)
    summary, note = _texts(first)
    assert summary.startswith("SUMMARY of ") and "id=42" in summary
    assert first.content[1] == image and not first.is_error
    assert "summary" in note and f"{len(text)}-character" in note
    assert f"({-(-len(text) // 1000)} pages)" in note
    assert full == text  # the cursor gives the whole result: nothing is lost
    assert _texts(again) == _texts(first)
    [call] = summarizer.calls  # the second time, the summary came from the cache
    assert call["path"] == "/v1/chat/completions" and call["auth"] == f"Bearer {SECRET}"
    system, user = call["body"]["messages"]
    assert call["body"]["model"] == "qwen" and system["role"] == "system"
    assert "identifiers" in system["content"] and "numbers" in system["content"]
    assert user["role"] == "user" and "query" in user["content"] and text in user["content"]

    # a restart keeps the summary; another model, or another input, asks again
    assert _texts(_run(tmp_path, lambda p: p.apply(model, "db", "query", original))) == [
        summary,
        note,
    ]
    assert len(summarizer.calls) == 1
    other = ProxyModel.from_options("summarize", {**options, "summarizeModel": "llama"})
    _run(tmp_path, lambda p: p.apply(other, "db", "query", original))
    changed = types.CallToolResult(content=[types.TextContent(type="text", text=text + "!")])
    _run(tmp_path, lambda p: p.apply(model, "db", "query", changed))
    assert len(summarizer.calls) == 3
    assert SECRET not in caplog.text


def test_summarize_long_input_and_no_key(
    tmp_path: Path, summarizer: _SummarizerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    monkeypatch.setenv(SUMMARIZERS_ENV, f"s={_url(summarizer)}")
    options = {"summarizer": "s", "pageChars": 100, "summarizeMaxInputChars": 500}
    model = ProxyModel.from_options("summarize", options)
    got = _run(tmp_path, lambda p: p.apply(model, "s", "t", result("z" * 5000)))
    [call] = summarizer.calls
    assert call["auth"] is None  # no key set: no Authorization header at all
    user = call["body"]["messages"][1]["content"]
    assert "z" * 500 in user and "z" * 501 not in user
    assert "its first 500 characters" in _texts(got)[-1] and "50 pages" in _texts(got)[-1]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("500", "answered HTTP 500"),
        ("malformed", "malformed answer"),
        ("notjson", "malformed answer"),
        ("slow", "no answer from 127.0.0.1:"),
        ("down", "cannot reach 127.0.0.1:"),
    ],
)
def test_summarizer_failures_fall_back_to_pages(
    tmp_path: Path,
    summarizer: _SummarizerServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    reason: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(API_KEY_ENV, SECRET)
    url = f"http://127.0.0.1:{_free_port()}/v1" if mode == "down" else _url(summarizer)
    summarizer.mode = mode
    options = {"summarizer": "s", "pageChars": 100, "summarizeTimeout": 0.2}
    model = ProxyModel.from_options("summarize", options, {"s": url})
    text = "".join(f"{i:04d}|" for i in range(250))

    async def fn(p: Pipeline) -> tuple[types.CallToolResult, str]:
        first = await p.apply(model, "s", "t", result(text))
        page = first.model_copy(update={"content": first.content[:-1]})
        return first, (await _read_all(p, page))[0]

    first, full = _run(tmp_path, fn)
    texts_ = _texts(first)
    assert not first.is_error and texts_[0] == text[:100] and full == text
    assert "summarizer failed" in texts_[-1] and reason in texts_[-1], texts_[-1]
    assert all(SECRET not in t for t in texts_) and SECRET not in caplog.text
    assert "summarizer failed" in caplog.text
    if mode != "down":
        assert len(summarizer.calls) == 1 and summarizer.calls[0]["auth"] == f"Bearer {SECRET}"
        summarizer.mode = "ok"  # a failure is not cached: the next call asks again
        again = _run(tmp_path, lambda p: p.apply(model, "s", "t", result(text)))
        assert _texts(again)[0].startswith("SUMMARY") and len(summarizer.calls) == 2


def test_summarizer_endpoints_are_the_operators(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13: a project chooses a summarizer by name among MCPLOCAL_SUMMARIZERS; a
    summarizeUrl of its own (where other callers' results and the key would go) is refused."""
    monkeypatch.setenv(SUMMARIZERS_ENV, "vllm=http://127.0.0.1:8000/v1, big=https://llm.example/v1")
    assert configured_summarizers() == {
        "vllm": "http://127.0.0.1:8000/v1",
        "big": "https://llm.example/v1",
    }
    chosen = ProxyModel.from_options("summarize", {"summarizer": "big"})
    assert chosen.summarize_url == "https://llm.example/v1"
    legacy = ProxyModel.from_options("summarize", {"summarizeUrl": "http://127.0.0.1:8000/v1/"})
    assert legacy.summarize_url == "http://127.0.0.1:8000/v1"
    with pytest.raises(ValueError, match=r"`summarizeUrl` `http://evil.example/v1` is not one"):
        ProxyModel.from_options("summarize", {"summarizeUrl": "http://evil.example/v1"})
    with pytest.raises(ValueError, match=r"summarizer `evil` is not one of .*`big`, `vllm`"):
        ProxyModel.from_options("summarize", {"summarizer": "evil"})
    monkeypatch.delenv(SUMMARIZERS_ENV)
    with pytest.raises(ValueError, match="none are configured"):
        ProxyModel.from_options("summarize", {"summarizeUrl": "http://127.0.0.1:8000/v1"})
    for bad in ("vllm", "Vllm=http://x/v1", "a=ftp://x", "a=http://x/v1,a=http://y/v1"):
        with pytest.raises(ValueError, match=SUMMARIZERS_ENV):
            parse_summarizers(bad)
