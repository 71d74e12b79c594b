"""GET /metrics: Prometheus text, public, labelled by route template and authz outcome."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mcpd.app import create_app
from mcpd.settings import Settings
from tests.mcpd.conftest import Api


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """Metrics do not depend on the database: SQLite only, to stay quick."""
    return f"sqlite:///{tmp_path / 'mcpd.db'}"


def _samples(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_is_public_prometheus_text_outside_the_api(api: Api) -> None:
    r = api.client.get("/metrics")  # no Authorization header
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=")
    assert "# TYPE mcpd_http_requests_total counter" in r.text
    assert "# TYPE mcpd_http_request_duration_seconds histogram" in r.text
    assert "# TYPE mcpd_authz_decisions_total counter" in r.text
    paths = api.client.get("/openapi.json").json()["paths"]
    assert "/metrics" not in paths
    assert api.client.get("/api/v1/metrics").status_code == 404


def test_requests_are_counted_by_route_template_never_the_raw_path(api: Api) -> None:
    api.ok("POST", "/secrets", json={"name": "sekrit-name", "data": {"k": "v"}})
    api.ok("GET", "/secrets/sekrit-name")
    assert api.call("GET", "/secrets/no-such-secret-xyz").status_code == 404
    assert api.client.get("/api/v1/servers").status_code == 401
    assert api.client.get("/no/such/route-qwerty").status_code == 404
    r = api.client.get("/metrics")
    for raw in ("sekrit-name", "no-such-secret-xyz", "route-qwerty"):
        assert raw not in r.text
    s = _samples(api.client)
    one = "/api/v1/secrets/{name}"
    assert _value(s, "mcpd_http_requests_total", method="GET", route=one, status="200") == 1
    assert _value(s, "mcpd_http_requests_total", method="GET", route=one, status="404") == 1
    assert (
        _value(s, "mcpd_http_requests_total", method="POST", route="/api/v1/secrets", status="201")
        == 1
    )
    assert (
        _value(s, "mcpd_http_requests_total", method="GET", route="/api/v1/servers", status="401")
        == 1
    )
    assert (
        _value(s, "mcpd_http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    )
    labels = {"method": "GET", "route": one, "status": "200"}
    assert _value(s, "mcpd_http_request_duration_seconds_count", **labels) == 1
    assert _value(s, "mcpd_http_request_duration_seconds_sum", **labels) > 0
    assert _value(s, "mcpd_http_request_duration_seconds_bucket", **labels, le="+Inf") == 1


def test_authorization_decisions_are_counted_by_outcome_and_kind(api: Api) -> None:
    before = _samples(api.client)
    nobody = api.user("nobody")  # the admin's POST /users is one allow on users
    api.ok("GET", "/servers")
    api.ok("GET", "/servers")
    assert api.call("GET", "/secrets", nobody).status_code == 403
    assert api.call("GET", "/auth/me", nobody).status_code == 200  # no decision: self route
    assert api.client.get("/api/v1/servers").status_code == 401  # no decision: no caller
    after = _samples(api.client)

    def delta(outcome: str, kind: str) -> float:
        name = "mcpd_authz_decisions_total"
        return _value(after, name, outcome=outcome, kind=kind) - _value(
            before, name, outcome=outcome, kind=kind
        )

    assert delta("allow", "servers") == 2
    assert delta("deny", "secrets") == 1
    assert delta("allow", "users") == 1
    assert delta("deny", "servers") == 0


def test_each_app_has_its_own_registry(tmp_path: Path) -> None:
    def settings(name: str) -> Settings:
        return Settings(
            database_url=f"sqlite:///{tmp_path / name}.db",
            secrets_key_file=tmp_path / f"{name}.key",
        )

    with (
        TestClient(create_app(settings("a"))) as a,
        TestClient(create_app(settings("b"))) as b,
    ):
        for _ in range(3):
            a.get("/healthz")
        b.get("/healthz")
        get = {"method": "GET", "route": "/healthz", "status": "200"}
        assert _value(_samples(a), "mcpd_http_requests_total", **get) == 3
        assert _value(_samples(b), "mcpd_http_requests_total", **get) == 1
