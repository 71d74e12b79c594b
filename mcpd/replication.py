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

On SQLite there are no replicas, but another process may still write the file (``mcpd
bootstrap`` while mcpd runs): :class:`SqliteWatcher` reads SQLite's ``PRAGMA data_version``
once a second and, when some other connection committed, moves every read cache on and,
if the policy's counter moved (migration 0007: triggers count every write to rules, tokens,
users and projects), brings the enforcer up to what the database holds (only the difference).
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
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


BOOTSTRAP_TABLES = ("users", "groups", "group_members", "casbin_rule")


def notify_reload(database_url: str, source: str) -> None:
    """Tell every replica on ``database_url`` (PostgreSQL) that another process wrote it:
    each reloads its policy and forgets its cached reads. For ``mcpd bootstrap``."""
    tables = json.dumps({"tables": list(BOOTSTRAP_TABLES), "from": source})
    with psycopg.connect(libpq_url(database_url), autocommit=True, connect_timeout=5) as conn:
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps({"reload": True})))
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, tables))


def sqlite_path(database_url: str) -> str | None:
    """The file of a ``sqlite:///FILE`` URL; None for an in-memory database."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return url.database


def _policy_version(conn: sqlite3.Connection) -> int | None:
    """Migration 0007's counter of writes to what the policy is built from; None if absent."""
    try:
        row = conn.execute("SELECT n FROM policy_version").fetchone()
    except sqlite3.OperationalError:
        return None
    return int(row[0]) if row else None


class SqliteWatcher:
    """Follows commits that other processes make to mcpd's SQLite file (see above)."""

    def __init__(
        self,
        path: str,
        authorizer: Authorizer,
        load_all: Callable[[], tuple[list[Rule], list[TokenGrant]]],
        generations: Generations,
        interval: float = 1.0,
    ) -> None:
        self.path = path
        self.authorizer = authorizer
        self.generations = generations
        self.interval = interval
        self._load_all = load_all
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.synced = 0  # how many times another process's policy change was taken in
        self.reads = 0  # how many times the policy was read again to look for one

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mcpd-sqlite-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            last = conn.execute("PRAGMA data_version").fetchone()[0]
            policy = _policy_version(conn)
            while not self._stop.wait(self.interval):
                try:
                    version = conn.execute("PRAGMA data_version").fetchone()[0]
                    if version != last:  # some other connection committed (ours too)
                        last = version
                        self.generations.bump_all()
                        now = _policy_version(conn)
                        if now is None or now != policy:  # (None: no counter, look anyway)
                            policy = now
                            self.sync()
                except Exception:
                    log.exception("following the database file failed; trying again")
        finally:
            conn.close()

    def _difference(self) -> tuple[set[tuple[Rule, str]], set[tuple[Rule, str]], bool]:
        self.reads += 1
        stored, tokens = self._load_all()
        have = {(r, r.source) for r in self.authorizer.rules() if r.source.startswith("db:")}
        want = {(r, r.source) for r in stored}
        known = {sha: self.authorizer.token(sha) for sha in {t.sha for t in tokens}}
        tokens_differ = any(known[t.sha] != t for t in tokens) or len(tokens) != len(
            [r for r in self.authorizer.rules() if r.source.startswith("token ")]
        )
        return want - have, have - want, tokens_differ

    def sync(self) -> None:
        """Apply what the database holds and the enforcer does not (and the reverse).

        This process's own commits also move ``data_version``, and reach the enforcer a
        moment after they commit: only a difference seen twice, 50 ms apart, is applied,
        matched by row (``exact``) so that a rule is never held twice."""
        added, removed, tokens_differ = self._difference()
        if not (added or removed or tokens_differ):
            return
        time.sleep(0.05)
        added2, removed2, tokens_differ2 = self._difference()
        added, removed = added & added2, removed & removed2
        if added or removed:
            self.authorizer.apply([r for r, _ in added], [r for r, _ in removed], exact=True)
        if tokens_differ and tokens_differ2:
            _, tokens = self._load_all()
            current = {t.sha for t in tokens}
            for grant in tokens:
                if self.authorizer.token(grant.sha) != grant:
                    self.authorizer.register_token(grant)
            for rule in self.authorizer.rules():
                sha = rule.values[0].removeprefix("McpToken:")
                if rule.source.startswith("token ") and sha not in current:
                    self.authorizer.unregister_token(sha)
        self.synced += 1
        log.info("took in a policy change another process made to the database")
