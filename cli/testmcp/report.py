"""What a run of ``mcpctl test mcp`` records, and the helpers every step uses.

A :class:`Run` holds the settings (URL, token, planned call, timeout) and the
:class:`Report` its steps add to; a step that ends the run adds itself and raises the
:class:`Stop` that :meth:`Run.stop` returns. What a server sent is shortened and quoted
(:func:`clip`, :func:`printable`) before it is shown.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import Any, Final
from urllib.parse import urlsplit

from cli.errors import ERROR, OK

__all__ = [
    "PREVIEW",
    "Report",
    "Run",
    "Step",
    "Stop",
    "clip",
    "elapsed_ms",
    "our_version",
    "plural",
    "printable",
]

PREVIEW: Final = 200


@dataclass
class Step:
    name: str
    ok: bool
    ms: float
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "ms": round(self.ms, 1),
            "detail": self.detail,
            **self.extra,
        }


@dataclass
class Report:
    url: str
    steps: list[Step] = field(default_factory=list)
    code: int = OK

    @property
    def ok(self) -> bool:
        return self.code == OK

    def first_failure(self) -> Step | None:
        return next((s for s in self.steps if not s.ok), None)


class Stop(Exception):
    """The run cannot go on; the failed step is already in the report."""


class Run:
    """One run: what to check, how long each step may take, and the report so far."""

    def __init__(
        self, url: str, token: str | None, call: tuple[str, dict[str, Any]] | None, timeout: float
    ) -> None:
        self.url = url
        self.token = token
        self.call = call
        self.timeout = timeout
        self.where = urlsplit(url).netloc.rpartition("@")[2]
        self.report = Report(url=url)

    def add(self, step: Step, code: int = ERROR) -> None:
        self.report.steps.append(step)
        if not step.ok:
            self.report.code = max(self.report.code, code)  # DENIED (2) outranks ERROR (1)

    def stop(self, step: Step, code: int = ERROR) -> Stop:
        """Add a failed step that ends the run; the caller raises what this returns."""
        self.add(step, code)
        return Stop(step.name)


def elapsed_ms(start: float) -> float:
    """Milliseconds since ``start`` (a :func:`time.perf_counter` reading)."""
    return (time.perf_counter() - start) * 1000


def our_version() -> str:
    try:
        return dist_version("mcpctl")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"


def clip(text: str, limit: int = PREVIEW) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def printable(name: str) -> str:
    """A name a server sent, escaped as in JSON and clipped, safe to print."""
    return clip(json.dumps(name, ensure_ascii=False)[1:-1], 64)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
