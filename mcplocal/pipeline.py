"""Proxy models: what mcplocal does to a tool's result before the client sees it.

* ``passthrough`` (default): nothing.
* ``paginate``: a result whose text is over ``pageChars`` is cut into pages; the client
  gets the first with a cursor for ``mcplocal__next_page``. The full text is in the file
  cache, so pages survive a restart and are the same on every replica sharing the cache.
* ``summarize``: a long result is summarized by an OpenAI-compatible chat endpoint (vLLM,
  ...); the summary says it is one and carries a cursor to the full text, so nothing is
  lost. Summaries are cached by their input. If the summarizer fails, the result is
  paginated instead, with a line saying why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import mcp_types as types

from mcplocal.cache import FileCache

log = logging.getLogger("mcplocal.pipeline")

PAGE_TOOL = "mcplocal__next_page"
_CURSOR = re.compile(r"^([0-9a-f]{64}):([0-9]{1,6})$")
_OPTIONS = {
    "pageChars": "page_chars",
    "summarizeUrl": "summarize_url",
    "summarizeModel": "summarize_model",
    "summarizeMaxInputChars": "summarize_max_input_chars",
    "summarizeTimeout": "summarize_timeout",
}
SYSTEM_PROMPT = (
    "You summarize the result of a tool call for an AI assistant. Be faithful and brief. "
    "Keep identifiers, names, numbers, paths, URLs and error messages exactly as given. "
    "Do not add anything that is not in the result."
)


@dataclass(frozen=True)
class ProxyModel:
    name: Literal["passthrough", "paginate", "summarize"] = "passthrough"
    page_chars: int = 20_000
    summarize_url: str | None = None
    summarize_model: str = "default"
    summarize_api_key: str | None = None
    summarize_max_input_chars: int = 100_000
    summarize_timeout: float = 60.0

    @classmethod
    def from_options(cls, name: str, options: dict[str, Any]) -> ProxyModel:
        if name not in ("passthrough", "paginate", "summarize"):
            raise ValueError(f"unknown proxy model `{name}`: passthrough, paginate or summarize")
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise ValueError(f"unknown proxy options {unknown}; known: {sorted(_OPTIONS)}")
        values: dict[str, Any] = {_OPTIONS[k]: v for k, v in options.items() if v is not None}
        for key in ("page_chars", "summarize_max_input_chars"):
            if key in values and (not isinstance(values[key], int) or values[key] <= 0):
                raise ValueError(f"`{key}` must be a positive integer")
        timeout = values.get("summarize_timeout", 60.0)
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError("`summarizeTimeout` must be a positive number of seconds")
        url = values.get("summarize_url")
        if name == "summarize" and not url:
            raise ValueError("the summarize model needs `summarizeUrl`")
        if url is not None and not re.match(r"^https?://\S+$", str(url)):
            raise ValueError("`summarizeUrl` must be an http(s) URL")
        api_key = os.environ.get("MCPLOCAL_SUMMARIZE_API_KEY") or None
        return cls(name=name, summarize_api_key=api_key, **values)  # type: ignore[arg-type]


def page_tool() -> types.Tool:
    return types.Tool(
        name=PAGE_TOOL,
        description="Fetch the next page of a long tool result (mcplocal keeps the rest)",
        input_schema={
            "type": "object",
            "properties": {"cursor": {"type": "string", "description": "from the last page"}},
            "required": ["cursor"],
        },
    )


def _text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[_text(text)], is_error=True)


class Pipeline:
    def __init__(self, cache: FileCache, http: httpx.AsyncClient) -> None:
        self.cache = cache
        self.http = http

    async def apply(
        self, model: ProxyModel, server: str, tool: str, result: types.CallToolResult
    ) -> types.CallToolResult:
        if model.name == "passthrough" or result.is_error:
            return result
        text = _text_of(result)
        if len(text) <= model.page_chars:
            return result
        others = [c for c in result.content if not isinstance(c, types.TextContent)]
        key = self.cache.put_json(
            {"server": server, "tool": tool, "text": text, "page_chars": model.page_chars}
        )
        if model.name == "paginate":
            return self._page(key, 0, extra=others)
        try:
            summary = await self._summarize(model, tool, text)
        except Exception as exc:  # the summarizer is optional: never lose the result
            log.warning("summarizer failed for %s/%s: %s", server, tool, type(exc).__name__)
            page = self._page(key, 0, extra=others)
            reason = f"{type(exc).__name__}: {str(exc)[:200]}"
            page.content.append(_text(f"[the summarizer failed ({reason}); showing pages]"))
            return page
        pages = -(-len(text) // model.page_chars)
        note = (
            f"[summary of a {len(text)}-character result; the full text is {pages} pages: "
            f'call tool {PAGE_TOOL} with {{"cursor": "{key}:0"}}]'
        )
        return types.CallToolResult(content=[_text(summary), *others, _text(note)])

    async def _summarize(self, model: ProxyModel, tool: str, text: str) -> str:
        source = text[: model.summarize_max_input_chars]
        # the summary is kept under the hash of what it summarizes (and by which model)
        memo = hashlib.sha256(
            json.dumps([model.summarize_url, model.summarize_model, source]).encode()
        ).hexdigest()
        done = self.cache.get_json(memo)
        if isinstance(done, str):
            return done
        assert model.summarize_url is not None
        key = model.summarize_api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        r = await self.http.post(
            model.summarize_url.rstrip("/") + "/chat/completions",
            json={
                "model": model.summarize_model,
                "messages": [
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": f"Result of tool `{tool}`:\n\n{source}"},
                ],
            },
            headers=headers,
            timeout=model.summarize_timeout,
        )
        r.raise_for_status()
        summary = r.json()["choices"][0]["message"]["content"]
        if not isinstance(summary, str) or not summary.strip():
            raise ValueError("the summarizer returned no text")
        self.cache.put_at(memo, json.dumps(summary).encode())
        return summary

    def _page(self, key: str, page: int, extra: list[Any] | None = None) -> types.CallToolResult:
        stored = self.cache.get_json(key)
        if not isinstance(stored, dict) or not isinstance(stored.get("text"), str):
            return _error("this result is no longer in mcplocal's cache: call the tool again")
        text, size = stored["text"], int(stored["page_chars"])
        pages = max(1, -(-len(text) // size))
        if page >= pages:
            return _error(f"there is no page {page + 1}: the result has {pages}")
        content: list[Any] = [_text(text[page * size : (page + 1) * size]), *(extra or [])]
        if page + 1 < pages:
            content.append(
                _text(
                    f"[page {page + 1} of {pages}: call tool {PAGE_TOOL} with "
                    f'{{"cursor": "{key}:{page + 1}"}} for the next page]'
                )
            )
        else:
            content.append(_text(f"[page {page + 1} of {pages}: the last]"))
        return types.CallToolResult(content=content)

    async def next_page(self, cursor: str) -> types.CallToolResult:
        match = _CURSOR.match(cursor.strip())
        if match is None:
            return _error("not a cursor from mcplocal: use the one a previous page gave")
        return self._page(match.group(1), int(match.group(2)))
