"""Prometheus metrics: one registry per app, served as text at ``GET /metrics``.

* ``mcpd_http_requests_total`` and ``mcpd_http_request_duration_seconds``, labelled by
  method, route template (the path format, never the raw path: unmatched paths are
  ``<unmatched>``) and status;
* ``mcpd_authz_decisions_total``, labelled by outcome (allow, deny) and resource kind,
  counted where the API's one authorization dependency decides.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.types import Scope

UNMATCHED = "<unmatched>"

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "record_decision", "route_template"]


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

        # the labelled children, by their labels (prometheus_client's labels() takes a lock
        # and builds a key on every call; the label sets here are few and fixed)
        self._served: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._decided: dict[tuple[str, bool], Any] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._served.get(key)
        if children is None:
            labels = (method, route, str(status))
            children = self._served[key] = (
                self.requests.labels(*labels),
                self.latency.labels(*labels),
            )
        children[0].inc()
        children[1].observe(seconds)

    def observe_decision(self, kind: str, allowed: bool) -> None:
        child = self._decided.get((kind, allowed))
        if child is None:
            child = self._decided[(kind, allowed)] = self.decisions.labels(
                "allow" if allowed else "deny", kind
            )
        child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def record_decision(request: Request, kind: str, allowed: bool) -> None:
    """Count one authorization decision in the metrics of the app serving ``request``."""
    metrics: Metrics | None = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.observe_decision(kind, allowed)


def route_template(scope: Scope) -> str:
    """The route template a request matched (``scope["route"]``), or ``<unmatched>``."""
    route: Any = scope.get("route")
    template = getattr(route, "path_format", None)
    return template if isinstance(template, str) else UNMATCHED
