"""Issue 13's escalation matrix (tests/mcpd/escalation.yaml), one parametrized test: each
attack on mcpd (SQLite and PostgreSQL) is refused as the case says, audited as a deny, and
leaves the database as it was; each neighbour stays allowed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mcpd import manifests
from tests.mcpd.conftest import Api

MATRIX = yaml.safe_load((Path(__file__).parent / "escalation.yaml").read_text())
ATTACKER = "mallory"


def send(api: Api, request: Any, bearer: str | None = None) -> Any:
    """A matrix request: [METHOD, PATH, BODY] or {restore: [[KIND, NAME, SPEC], ...]}."""
    if isinstance(request, dict):
        text = manifests.dump(manifests.document(k, n, s) for k, n, s in request["restore"])
        return api.call("POST", "/restore", bearer, content=text)
    method, path, body = request[:3]
    return (
        api.call(method, path, bearer, json=body)
        if body is not None
        else api.call(method, path, bearer)
    )


def replaced(request: Any, old: str, new: str) -> Any:
    return json.loads(json.dumps(request).replace(old, new))


def setup(api: Api, bindings: list[str]) -> str:
    for request in MATRIX["setup"]:
        r = send(api, request)
        assert r.status_code < 300, (request, r.text)
    return api.user(ATTACKER, *bindings)


@pytest.mark.parametrize("case", MATRIX["cases"], ids=[c["name"] for c in MATRIX["cases"]])
def test_escalation(api: Api, case: dict[str, Any]) -> None:
    bearer = setup(api, case["bindings"])
    for step in case.get("steps", []):
        r = send(api, step, bearer)
        assert r.status_code == step[3], (step, r.text)
    before = api.state()
    denies = len(api.ok("GET", f"/auditevents?outcome=deny&subject={ATTACKER}")["items"])
    r = send(api, case["attack"], bearer)
    assert r.status_code == case["status"], r.text
    if case["status"] < 400:
        assert api.state() != before  # the neighbour did change something
        return
    body = r.json()
    for part in case.get("detail", []):
        assert part in body["detail"], (part, body["detail"])
    if "missing" in case:
        assert case["missing"] in {m["verb"] for m in body.get("missing", [])}, body
    events = api.ok("GET", f"/auditevents?outcome=deny&subject={ATTACKER}")["items"]
    assert len(events) > denies, "the refusal was not audited"
    want = case["audit"]
    assert any(
        e["action"] == want["action"]
        and e["kind"] == want["kind"]
        and e["name"] == want.get("name", e["name"])
        for e in events
    ), events
    assert api.state() == before, "the refused attack changed the database"
    if "same_as_missing" in case:
        old, new = case["same_as_missing"]
        other = send(api, replaced(case["attack"], old, new), bearer)
        assert other.status_code == r.status_code, other.text
        assert other.json()["detail"] == body["detail"].replace(old, new)
        assert api.state() == before
