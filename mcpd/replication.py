"""Several mcpd replicas on one PostgreSQL: every policy or token change reaches them all,
and so does the news of which tables a commit wrote (for their read caches, mcpd.changes).

Each replica's enforcer is a copy of the policy held in the database. A change committed
through one replica is applied there at once (``PolicyChange.publish``,
``register_token``, ...); this module carries it to the others with PostgreSQL's own
LISTEN/NOTIFY, through psycopg's notification API (no polling loop of ours):

* a listener on the local enforcer sends each local change as a ``NOTIFY mcpd_policy``
  (JSON: the rules added and removed, token grants changed; a change too big for a
  notification is sent as "reload");
* a thread LISTENs on the channel and applies other replicas' changes to the local
  enforcer, whose own followers (mcplocal) then hear of them like of any other change;
* after every (re)connection - PostgreSQL restarted, a network blip - it reloads the whole
  policy from the database, so a notification missed while away loses nothing.

Notifications are sent after the change's transaction committed, so a replica never
applies something that was rolled back. Table changes travel the same way (``{"tables":
[...]}``); while the LISTEN connection is down the replica caches no reads
(``Generations.set_coherent``).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from authz import Authorizer, PolicyEvent, Rule, TokenGrant
from authz.wire import apply_change, event_to_json
from mcpd.changes import Generations

log = logging.getLogger("mcpd.replication")

CHANNEL = "mcpd_policy"
MAX_PAYLOAD = 7900  # PostgreSQL's limit is 8000 bytes


def libpq_url(sqlalchemy_url: str) -> str:
    """The psycopg (libpq) form of a ``postgresql+psycopg://`` SQLAlchemy URL."""
    return (
        make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


class PolicyReplicator:
    def __init__(
        self,
        database_url: str,
        authorizer: Authorizer,
        load_all: Callable[[], tuple[list[Rule], list[TokenGrant]]],
        generations: Generations,
    ) -> None:
        self.url = libpq_url(database_url)
        self.authorizer = authorizer
        self.generations = generations
        self._load_all = load_all  # the whole policy from the database, for a reload
        self.id = uuid.uuid4().hex
        self._applying = threading.local()  # set while applying another replica's change
        self._outbox: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.connected = threading.Event()
        self.received = 0

    # -- life --------------------------------------------------------------------------------

    def start(self) -> None:
        self.generations.set_coherent(False)  # until LISTEN is established
        self.authorizer.follow(self._on_local)
        self.generations.follow(self._on_tables)
        for target, name in ((self._listen, "listen"), (self._send, "notify")):
            t = threading.Thread(target=target, name=f"mcpd-replication-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self._outbox.put(None)
        self.authorizer.unfollow(self._on_local)
        self.generations.unfollow(self._on_tables)
        for t in self._threads:
            t.join(timeout=5)

    # -- out: this replica's changes -----------------------------------------------------------

    def _on_local(self, event: PolicyEvent) -> None:
        if getattr(self._applying, "active", False):
            return  # another replica's change, applied here: not ours to send again
        if not event.reload:  # stored rules and token grants: what the database holds
            event = PolicyEvent(
                added=tuple(r for r in event.added if r.source.startswith("db:")),
                removed=tuple(r for r in event.removed if r.source.startswith("db:")),
                tokens=event.tokens,
                tokens_removed=event.tokens_removed,
            )
            if not (event.added or event.removed or event.tokens or event.tokens_removed):
                return
        body = event_to_json(event)
        body["from"] = self.id
        payload = json.dumps(body, separators=(",", ":"))
        if len(payload.encode()) > MAX_PAYLOAD:
            payload = json.dumps({"reload": True, "from": self.id})
        self._outbox.put(payload)

    def _on_tables(self, tables: frozenset[str]) -> None:
        self._outbox.put(json.dumps({"tables": sorted(tables), "from": self.id}))

    def _send(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self._stop.is_set():
            payload = self._outbox.get()
            if payload is None:
                break
            deadline = time.monotonic() + 60.0
            while not self._stop.is_set():
                try:
                    if conn is None or conn.closed:
                        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
                    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
                    break
                except psycopg.Error as exc:
                    conn = None
                    if time.monotonic() > deadline:
                        # the others reload everything when they reconnect; say so loudly
                        log.error("could not notify other replicas of a change: %s", exc)
                        break
                    time.sleep(0.5)
        if conn is not None:
            conn.close()

    # -- in: the other replicas' changes -------------------------------------------------------

    def _listen(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._reload()  # whatever happened while we were not listening
                    self.generations.set_coherent(True)
                    self.connected.set()
                    delay = 0.2
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._receive(note.payload)
                        conn.execute("SELECT 1")  # notices a dead connection within a second
            except psycopg.Error as exc:
                log.warning("policy notifications lost (%s); reconnecting", exc)
            except Exception:
                log.exception("policy replication failed; reconnecting")
            self.generations.set_coherent(False)
            self.connected.clear()
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, 5.0)

    def _receive(self, payload: str) -> None:
        try:
            body = json.loads(payload)
        except ValueError:
            log.warning("ignoring a malformed policy notification")
            return
        if body.get("from") == self.id:
            return
        self.received += 1
        tables = body.get("tables")
        if isinstance(tables, list):
            self.generations.bump((t for t in tables if isinstance(t, str)), local=False)
            return
        if body.get("reload"):
            self._reload()
            return
        self._applying.active = True
        try:
            apply_change(self.authorizer, body, exact=True)
        finally:
            self._applying.active = False

    def _reload(self) -> None:
        stored, tokens = self._load_all()
        self._applying.active = True
        try:
            self.authorizer.reload(stored, tokens)
        finally:
            self._applying.active = False
