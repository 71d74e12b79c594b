"""mcpd takes a proxy's tool-call records idempotently (SQLite and PostgreSQL): a batch
sent again - a retry after a lost answer - records each id once, and says how many it
already had; records carry the deciding line and the policy revision."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from fastapi.testclient import TestClient

from mcpd.app import create_app
from mcpd.settings import Settings
from tests.mcpd.conftest import Api


def events(n: int, **extra: object) -> list[dict[str, object]]:
    return [
        {"id": str(uuid.uuid4()), "user": "dev", "server": "demo", "tool": "add",
         "project": "", "outcome": "allow", "durationMs": 1.5, "requestId": f"r{i}",
         "reason": "allowed by `p, ...` (roles.csv:3)", "policyRevision": "0123456789ab",
         **extra}
        for i in range(n)
    ]  # fmt: skip


def test_a_batch_sent_twice_is_recorded_once(api: Api) -> None:
    proxy = api.user("mcplocal@svc", "action:proxy")
    batch = events(50)
    assert api.ok("POST", "/auditevents", proxy, json={"events": batch}) == {
        "recorded": 50, "duplicates": 0}  # fmt: skip
    # the answer was lost: the proxy sends the batch again, with ten new ones
    again = batch[20:] + events(10)
    answer = api.ok("POST", "/auditevents", proxy, json={"events": again})
    assert answer == {"recorded": 10, "duplicates": 30}
    items = api.ok("GET", "/auditevents", params={"action": "call", "limit": 1000})["items"]
    ids = [e["eventId"] for e in items]
    assert len(ids) == 60 == len(set(ids))
    assert set(ids) == {e["id"] for e in batch + again}
    one = items[0]
    assert one["policyRevision"] == "0123456789ab"
    assert one["detail"]["reason"].endswith("(roles.csv:3)")


def test_mcpd_s_own_records_carry_an_id_and_the_revision(api: Api) -> None:
    api.ok("POST", "/projects", json={"name": "web"})
    (event,) = api.ok("GET", "/auditevents", params={"kind": "projects"})["items"]
    assert uuid.UUID(event["eventId"])
    assert event["policyRevision"] and len(event["policyRevision"]) == 12


def test_a_malformed_id_is_refused(api: Api) -> None:
    proxy = api.user("mcplocal@svc", "action:proxy")
    r = api.call("POST", "/auditevents", proxy, json={"events": events(1, id="x" * 36)})
    assert r.status_code == 422


def test_two_replicas_taking_the_same_batches_at_once_record_each_id_once(
    api: Api, settings: Settings
) -> None:
    """Two mcpd apps on one database (a proxy's retry may land on the other replica, while
    the first is still committing): the unique event id decides, not the replica."""
    proxy = api.user("mcplocal@svc", "action:proxy")
    batches = [events(100) for _ in range(8)]
    answers: list[dict[str, int]] = []
    with TestClient(create_app(settings)) as other:
        replicas = [api.client, other]

        def send(i: int) -> None:
            for batch in batches:  # every batch to both replicas, racing
                r = replicas[i].post(
                    "/api/v1/auditevents", headers=api.h(proxy), json={"events": batch}
                )
                assert r.status_code == 202, r.text
                answers.append(r.json())

        threads = [threading.Thread(target=send, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert sum(a["recorded"] for a in answers) == 800
    assert sum(a["duplicates"] for a in answers) == 800
    items = api.ok("GET", "/auditevents", params={"action": "call", "limit": 1000})["items"]
    assert len(items) == 800 == len({e["eventId"] for e in items})


def test_every_field_of_a_record_comes_back_as_sent(api: Api) -> None:
    """What the batch insert does with each value (PostgreSQL: the batch goes as one JSON
    parameter): a time's offset, a time without one (UTC), quotes, backslashes and
    non-ASCII in the detail, a token caller and a user caller, absent optional fields."""
    proxy = api.user("mcplocal@svc", "action:proxy")
    sha = "ab" * 32
    sent = [
        {**events(1)[0], "time": "2026-01-02T03:04:05.123456+02:00",
         "error": 'a "quoted" \\ back\\slash, ünïcødé ✓ and a tab\t', "outcome": "error"},
        {"id": str(uuid.uuid4()), "tokenName": "ci", "tokenSha": sha, "server": "s",
         "tool": "t", "outcome": "deny", "durationMs": 0, "time": "2026-01-02T03:04:05"},
    ]  # fmt: skip
    assert api.ok("POST", "/auditevents", proxy, json={"events": sent})["recorded"] == 2
    items = api.ok("GET", "/auditevents", params={"action": "call"})["items"]
    got = {e["eventId"]: e for e in items}
    first, second = got[sent[0]["id"]], got[sent[1]["id"]]
    assert first["time"].startswith("2026-01-02T01:04:05.123456")  # the same instant, in UTC
    assert first["detail"]["error"] == sent[0]["error"]
    assert first["detail"]["reason"] == sent[0]["reason"]
    assert (first["subject"], first["tokenName"], first["outcome"]) == ("dev", None, "error")
    assert (first["requestId"], first["policyRevision"]) == ("r0", "0123456789ab")
    assert second["time"].startswith("2026-01-02T03:04:05")
    assert (second["subject"], second["tokenName"], second["tokenSha"]) == ("ci", "ci", sha)
    assert (second["name"], second["project"], second["policyRevision"]) == ("s__t", "", None)
    assert "error" not in second["detail"] and second["detail"]["durationMs"] == 0


def test_ingest_stores_what_the_orm_stores(db_engine: Any) -> None:
    """audit.ingest's SQLite path binds the values itself (one executemany): each column
    holds exactly what the ORM writes for the same record (times, JSON detail, NULs made
    to fit), and an id already there is skipped and not counted."""
    from sqlalchemy.orm import sessionmaker

    from mcpd import audit
    from mcpd.db import migrate
    from mcpd.models import AuditEvent
    from mcpd.principal import Principal

    migrate(db_engine)
    sessions = sessionmaker(db_engine)
    who = Principal("User:a", user="a", token_name="t\x00k", token_sha="ab" * 32)
    detail = {"server": "s", "reason": "déjà"}
    row = audit.row(who, action="call", kind="tools", name="s__t", outcome="allow",
                    request_id="r1", detail=detail, revision="abc")  # fmt: skip
    with sessions() as s:
        s.add(AuditEvent(**row))
        s.commit()
    with sessions() as s:
        assert audit.ingest(s, [{**row, "event_id": "other"}, row]) == 1
        s.commit()
    columns = [c.name for c in AuditEvent.__table__.columns if c.name not in ("id", "event_id")]
    with db_engine.connect() as conn:
        stored = conn.exec_driver_sql(
            f"SELECT {', '.join(columns)} FROM audit_events ORDER BY id"
        ).all()
    assert len(stored) == 2 and stored[0] == stored[1]
