"""upstream/ids.py: request and audit event ids are unique and unguessable - an event id
is the idempotency key of audit ingest, so one that could be predicted would let a sender
of records pre-empt (and so suppress) mcpd's own records."""

from __future__ import annotations

import re

from upstream import ids


def test_ids_are_random_not_counted() -> None:
    events = [ids.event_id() for _ in range(200)]
    requests = [ids.request_id() for _ in range(200)]
    assert all(re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", e) for e in events)
    assert all(re.fullmatch(r"[0-9a-f]{32}", r) for r in requests)
    assert len(set(events)) == len(set(requests)) == 200
    # no shared stem: successive ids of a counter (or a per-process prefix) would share one
    for made in (events, requests):
        assert len({m[:6] for m in made}) > 190
        assert len({m[-6:] for m in made}) > 190
