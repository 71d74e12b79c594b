"""Prometheus metrics: one registry per app, served as text at ``GET /metrics``.

* ``mcpd_http_requests_total`` and ``mcpd_http_request_duration_seconds``, labelled by
  method, route template (the path format, never the raw path: unmatched paths are
  ``<unmatched>``) and status;
* ``mcpd_authz_decisions_total``, labelled by outcome (allow, deny) and resource kind,
  counted where the API's one authorization dependency decides.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "<unmatched>"

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "MetricsMiddleware", "record_decision"]


class Metrics:
    """The metrics of one mcpd app, in a registry of their own (so apps never collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        labels = ("method", "route", "status")
        self.requests = Counter(
            "mcpd_http_requests",
            "HTTP requests served, by method, route template and status",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "mcpd_http_request_duration_seconds",
            "time to serve an HTTP request, by method, route template and status",
            labels,
            registry=self.registry,
        )
        self.decisions = Counter(
            "mcpd_authz_decisions",
            "authorization decisions made for API requests, by outcome and resource kind",
            ("outcome", "kind"),
            registry=self.registry,
        )
        self.relayed = Counter(
            "mcpd_relayed_calls",
            "tools/call requests relayed as bytes (the fast lane) rather than through the SDK",
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route, str(status)).observe(seconds)

    def observe_decision(self, kind: str, allowed: bool) -> None:
        self.decisions.labels("allow" if allowed else "deny", kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def record_decision(request: Request, kind: str, allowed: bool) -> None:
    """Count one authorization decision in the metrics of the app serving ``request``."""
    metrics: Metrics | None = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.observe_decision(kind, allowed)


class MetricsMiddleware:
    """Pure ASGI middleware timing each HTTP request (cheaper than ``BaseHTTPMiddleware``)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # an exception escaping the app becomes a 500 further out

        async def _send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            self.metrics.observe_request(
                scope["method"], _route_template(scope), status, time.perf_counter() - start
            )


def _route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    template = getattr(route, "path_format", None)
    return template if isinstance(template, str) else UNMATCHED
