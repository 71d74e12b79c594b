"""Proxy models: what mcplocal does to a tool's result before the client sees it.

A project chooses one (``proxyModel``, with ``proxyOptions``):

* ``passthrough`` (the default): nothing.
* ``paginate``: a result whose text is over ``pageChars`` characters is cut into pages; the
  client gets the first, then a line naming the ``mcplocal__next_page`` call (and its
  cursor) that returns the next. The full text is in the file cache, so pages survive a
  restart and are the same on every replica sharing the cache directory.
* ``summarize``: a long result is summarized by an OpenAI-compatible chat endpoint (vLLM,
  ...). The summary says it is one and carries a cursor to the full text in pages, so
  nothing is lost. Summaries are cached by their input, so a repeated result costs one
  call. If the summarizer fails, the result is paginated instead, with a line saying why.

Error results pass through untouched, and so do results whose text fits one page. The
summarizer's API key comes from ``MCPLOCAL_SUMMARIZE_API_KEY`` only, and is never in a
result, a log line or a repr.

Where tool results (other callers' included) and that key are sent is the operator's
choice, not a project's: ``MCPLOCAL_SUMMARIZERS`` names the endpoints
(``name=url,name2=url2``), and a project chooses one by name (``summarizer: NAME``). The
deprecated ``summarizeUrl`` is accepted only when it is one of those URLs; any other is
refused with an error naming the setting.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard, cast
from urllib.parse import urlsplit

import anyio.to_thread
import httpx2
import mcp_types as types

from mcplocal.cache import CacheError, FileCache

__all__ = [
    "API_KEY_ENV",
    "PAGE_TOOL",
    "SUMMARIZERS_ENV",
    "Pipeline",
    "ProxyModel",
    "configured_summarizers",
    "page_tool",
    "parse_summarizers",
]

log = logging.getLogger("mcplocal.pipeline")

PAGE_TOOL = "mcplocal__next_page"
API_KEY_ENV = "MCPLOCAL_SUMMARIZE_API_KEY"
SUMMARIZERS_ENV = "MCPLOCAL_SUMMARIZERS"
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MODELS = ("passthrough", "paginate", "summarize")
# <key>:<page>, the page counted from 1, written one way only (no sign, no leading zero)
_CURSOR = re.compile(r"([0-9a-f]{64}):([1-9][0-9]{0,8})")
_OPTIONS = {
    "pageChars": "page_chars",
    "summarizer": "summarizer",
    "summarizeUrl": "summarize_url",
    "summarizeModel": "summarize_model",
    "summarizeMaxInputChars": "summarize_max_input_chars",
    "summarizeTimeout": "summarize_timeout",
}
SYSTEM_PROMPT = (
    "You summarize the result of a tool call for an AI assistant that will act on it. "
    "Be faithful and concise. Keep identifiers, names, numbers, paths, URLs and error "
    "messages exactly as they are given. Add nothing that is not in the result."
)


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True)
class ProxyModel:
    """A project's proxy model and its settings (validated on construction)."""

    name: Literal["passthrough", "paginate", "summarize"] = "passthrough"
    page_chars: int = 20_000
    summarize_url: str | None = None  # OpenAI-compatible base URL, e.g. http://host:8000/v1
    summarize_model: str = "default"
    summarize_api_key: str | None = field(default=None, repr=False)
    summarize_max_input_chars: int = 100_000
    summarize_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.name not in MODELS:
            raise ValueError(
                f"unknown proxy model `{self.name}`: use passthrough, paginate or summarize"
            )
        if not _positive_int(self.page_chars):
            raise ValueError(f"`pageChars` must be a positive integer, not `{self.page_chars}`")
        if not _positive_int(self.summarize_max_input_chars):
            raise ValueError(
                "`summarizeMaxInputChars` must be a positive integer, "
                f"not `{self.summarize_max_input_chars}`"
            )
        timeout = self.summarize_timeout
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise ValueError(
                f"`summarizeTimeout` must be a positive number of seconds, not `{timeout}`"
            )
        if not isinstance(self.summarize_model, str) or not self.summarize_model.strip():
            raise ValueError("`summarizeModel` must be a non-empty string")
        if self.summarize_url is not None:
            _check_url(self.summarize_url)
        elif self.name == "summarize":
            raise ValueError(
                "proxy model summarize needs `summarizer`: the name of one of the endpoints "
                f"mcplocal's operator configured in {SUMMARIZERS_ENV}"
            )

    @classmethod
    def from_options(
        cls, name: str, options: dict[str, Any], summarizers: dict[str, str] | None = None
    ) -> ProxyModel:
        """The model named ``name`` with a project's ``proxyOptions`` (camelCase keys; a
        null value means the default), the summarizer chosen among ``summarizers`` (by
        default the operator's, :func:`configured_summarizers`). ValueError says what is
        wrong."""
        if name not in MODELS:
            raise ValueError(
                f"unknown proxy model `{name}`: use passthrough, paginate or summarize"
            )
        if not isinstance(options, dict):
            raise ValueError("proxy options must be an object")
        unknown = [str(k) for k in options if k not in _OPTIONS]
        if any("key" in k.lower() or "token" in k.lower() for k in unknown):
            raise ValueError(
                f"unknown proxy options `{'`, `'.join(unknown)}`: the summarizer's API key is "
                f"read from the environment variable {API_KEY_ENV} only, never from options"
            )
        if unknown:
            raise ValueError(
                f"unknown proxy options `{'`, `'.join(unknown)}`: known ones are "
                + ", ".join(_OPTIONS)
            )
        values = {_OPTIONS[k]: v for k, v in options.items() if v is not None}
        url = values.get("summarize_url")
        if url is not None and not isinstance(url, str):
            raise ValueError("`summarizeUrl` must be a string")
        endpoints = configured_summarizers() if summarizers is None else summarizers
        values["summarize_url"] = _endpoint(endpoints, values.pop("summarizer", None), url)
        if values["summarize_url"] is None:
            del values["summarize_url"]
        api_key = (os.environ.get(API_KEY_ENV) or "").strip() or None
        model = cast(Literal["passthrough", "paginate", "summarize"], name)
        return cls(name=model, summarize_api_key=api_key, **values)


def _endpoint(endpoints: dict[str, str], chosen: object, url: str | None) -> str | None:
    """The URL of the operator's summarizer a project chose by name (or, deprecated, by
    its URL); ValueError for any other."""
    names = ", ".join(f"`{n}`" for n in sorted(endpoints)) or "none are configured"
    if chosen is not None:
        if not isinstance(chosen, str) or chosen not in endpoints:
            raise ValueError(
                f"summarizer `{str(chosen)[:100]}` is not one of mcplocal's summarizers "
                f"({names}): the operator names them in {SUMMARIZERS_ENV}"
            )
        return endpoints[chosen]
    if url is None:
        return None
    _check_url(url)
    for known in endpoints.values():
        if known.rstrip("/") == url.rstrip("/"):
            return known
    raise ValueError(
        f"`summarizeUrl` `{url[:200]}` is not one of the summarizer endpoints mcplocal's "
        f"operator configured in {SUMMARIZERS_ENV} ({names}): choose one by name with "
        "`summarizer`"
    )


def parse_summarizers(text: str) -> dict[str, str]:
    """``name=url,name2=url2`` (the value of ``MCPLOCAL_SUMMARIZERS``) as a dict;
    ValueError naming a bad entry."""
    out: dict[str, str] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        name, sep, url = (p.strip() for p in entry.partition("="))
        if not sep or not _NAME.match(name):
            raise ValueError(
                f"{SUMMARIZERS_ENV}: entry `{entry[:200]}` is not `name=url` with a name of "
                "lowercase letters, digits and '-'"
            )
        if name in out:
            raise ValueError(f"{SUMMARIZERS_ENV}: summarizer `{name}` is named twice")
        try:
            _check_url(url)
        except ValueError as exc:
            raise ValueError(f"{SUMMARIZERS_ENV}: summarizer `{name}`: {exc}") from None
        out[name] = url
    return out


def configured_summarizers() -> dict[str, str]:
    """The operator's summarizer endpoints, from ``MCPLOCAL_SUMMARIZERS``."""
    return parse_summarizers(os.environ.get(SUMMARIZERS_ENV, ""))


def _check_url(url: object) -> None:
    if not isinstance(url, str) or any(c.isspace() for c in url):
        raise ValueError("`summarizeUrl` must be an http(s) URL without spaces")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        host = None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"`summarizeUrl` must be an http(s) URL, not `{url[:200]}`")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"`summarizeUrl` must not carry credentials: set {API_KEY_ENV} for the API key"
        )
    if parts.query or parts.fragment:
        raise ValueError(
            "`summarizeUrl` is a base URL (…/v1) without query or fragment: "
            "mcplocal appends /chat/completions"
        )


def page_tool() -> types.Tool:
    """The tool a client calls for the next page of a long result."""
    return types.Tool(
        name=PAGE_TOOL,
        description=(
            "Fetch a further page of a long tool result that mcplocal cut into pages. "
            "Pass the cursor exactly as the previous page (or summary) gave it."
        ),
        input_schema={
            "type": "object",
            "properties": {
                "cursor": {"type": "string", "description": "the cursor from the last page"}
            },
            "required": ["cursor"],
            "additionalProperties": False,
        },
        annotations=types.ToolAnnotations(
            read_only_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )


def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[_text(text)], is_error=True)


def _record_ok(record: object) -> TypeGuard[dict[str, Any]]:
    return (
        isinstance(record, dict)
        and isinstance(record.get("server"), str)
        and isinstance(record.get("tool"), str)
        and isinstance(record.get("text"), str)
        and _positive_int(record.get("page_chars"))
    )


class _SummarizerFailed(Exception):
    """The summarizer gave no summary; the message is safe to show (no URL, no key)."""


class Pipeline:
    """Applies a project's proxy model to tool results; pages come from ``cache``."""

    def __init__(self, cache: FileCache, http: httpx2.AsyncClient) -> None:
        self.cache = cache
        self.http = http

    async def apply(
        self, model: ProxyModel, server: str, tool: str, result: types.CallToolResult
    ) -> types.CallToolResult:
        """``result`` as the client should see it under ``model``."""
        if model.name == "passthrough" or result.is_error:
            return result
        text = "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))
        if len(text) <= model.page_chars:
            return result
        others: list[types.ContentBlock] = [
            c for c in result.content if not isinstance(c, types.TextContent)
        ]
        record = {"server": server, "tool": tool, "text": text, "page_chars": model.page_chars}
        try:
            key = await anyio.to_thread.run_sync(self.cache.put_json, record)
        except CacheError as exc:  # no pages without the cache: better whole than lost
            log.error("%s/%s: result not paginated: %s", server, tool, exc)
            note = "[mcplocal could not keep this long result for paging; it is returned whole]"
            return result.model_copy(update={"content": [*result.content, _text(note)]})
        if model.name == "paginate":
            return self._page(key, record, 1, result, others)
        try:
            summary, truncated = await self._summarize(model, tool, text)
        except _SummarizerFailed as exc:
            log.warning("%s/%s: summarizer failed, paginating instead: %s", server, tool, exc)
            page = self._page(key, record, 1, result, others)
            note = f"[the summarizer failed ({exc}); the full result follows in pages instead]"
            page.content.append(_text(note))
            return page
        pages = math.ceil(len(text) / model.page_chars)
        source = f"its first {model.summarize_max_input_chars} characters" if truncated else "it"
        note = (
            f"[this is a summary of the {len(text)}-character result, made by mcplocal from "
            f"{source}; for the full text ({pages} pages) call tool {PAGE_TOOL} with "
            f'{{"cursor": "{key}:1"}}]'
        )
        return result.model_copy(update={"content": [_text(summary), *others, _text(note)]})

    async def next_page(
        self, cursor: str, *, allow: Callable[[str, str], bool] | None = None
    ) -> types.CallToolResult:
        """The page ``cursor`` names, or an error result if it is bad or has expired.
        ``allow(server, tool)``, if given, must accept the tool the result came from."""
        match = _CURSOR.fullmatch(cursor) if isinstance(cursor, str) else None
        if match is None:
            shown = cursor[:100] if isinstance(cursor, str) else type(cursor).__name__
            return _error(
                f"`{shown}` is not a cursor from mcplocal: pass the one the previous page "
                "gave, unchanged"
            )
        key, page = match.group(1), int(match.group(2))
        try:
            record = await anyio.to_thread.run_sync(self.cache.get_json, key)
        except (CacheError, ValueError) as exc:
            log.warning("cursor %s: %s", cursor, exc)
            record = None
        if not _record_ok(record) or (
            allow is not None and not allow(record["server"], record["tool"])
        ):
            return _error(
                "this cursor has expired (the result is no longer in mcplocal's cache): "
                "call the tool again"
            )
        pages = math.ceil(len(record["text"]) / record["page_chars"])
        if page > pages:
            return _error(f"there is no page {page}: the result has {pages}")
        return self._page(key, record, page)

    def _page(
        self,
        key: str,
        record: dict[str, Any],
        page: int,
        base: types.CallToolResult | None = None,
        others: Sequence[types.ContentBlock] = (),
    ) -> types.CallToolResult:
        text: str = record["text"]
        size: int = record["page_chars"]
        pages = math.ceil(len(text) / size)
        content: list[types.ContentBlock] = [
            _text(text[(page - 1) * size : page * size]),
            *others,
        ]
        if page < pages:
            content.append(
                _text(
                    f"[page {page} of {pages}: call tool {PAGE_TOOL} with "
                    f'{{"cursor": "{key}:{page + 1}"}} for the next page]'
                )
            )
        else:
            content.append(_text(f"[page {page} of {pages}: the last page]"))
        if base is None:
            return types.CallToolResult(content=content)
        return base.model_copy(update={"content": content})

    async def _summarize(self, model: ProxyModel, tool: str, text: str) -> tuple[str, bool]:
        """(summary, whether only the start of ``text`` was summarized)."""
        source = text[: model.summarize_max_input_chars]
        truncated = len(source) < len(text)
        question = f"The result of the tool `{tool}`:\n\n{source}"
        # a summary is kept under the hash of what produced it
        memo = hashlib.sha256(
            json.dumps([model.name, model.summarize_model, SYSTEM_PROMPT, question]).encode()
        ).hexdigest()
        try:
            kept = await anyio.to_thread.run_sync(self.cache.get_memo, memo)
            if kept is not None:
                summary = json.loads(kept)
                if isinstance(summary, str) and summary:
                    return summary, truncated
        except (CacheError, ValueError) as exc:
            log.warning("summary memo %s unusable: %s", memo, exc)
        summary = await self._ask(model, question)
        try:
            await anyio.to_thread.run_sync(self.cache.put_memo, memo, json.dumps(summary).encode())
        except CacheError as exc:
            log.warning("summary not cached: %s", exc)
        return summary, truncated

    async def _ask(self, model: ProxyModel, question: str) -> str:
        assert model.summarize_url is not None
        url = model.summarize_url.rstrip("/") + "/chat/completions"
        headers = {}
        if model.summarize_api_key:
            headers["Authorization"] = f"Bearer {model.summarize_api_key}"
        body = {
            "model": model.summarize_model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": question},
            ],
        }
        where = urlsplit(url).netloc
        try:
            r = await self.http.post(
                url, json=body, headers=headers, timeout=model.summarize_timeout
            )
        except httpx2.TimeoutException:
            raise _SummarizerFailed(
                f"no answer from {where} within {model.summarize_timeout:g}s"
            ) from None
        except httpx2.HTTPError as exc:
            raise _SummarizerFailed(f"cannot reach {where}: {type(exc).__name__}") from None
        if not r.is_success:
            raise _SummarizerFailed(f"{where} answered HTTP {r.status_code}")
        try:
            summary = r.json()["choices"][0]["message"]["content"]
        except (ValueError, LookupError, TypeError):
            summary = None
        if not isinstance(summary, str) or not summary.strip():
            raise _SummarizerFailed(f"{where} gave a malformed answer (no message content)")
        return summary.strip()[: model.page_chars]
