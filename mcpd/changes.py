"""Which tables changed: a generation counter per table, and read caches keyed by it.

Every commit that wrote a row of a table bumps that table's generation, here after the
commit (SQLAlchemy session events: ORM flushes and bulk UPDATE/DELETE statements) and, on
PostgreSQL, on every other replica when its notification arrives (mcpd.replication). A
cached read remembers the generation it was computed under and is served only while that
is still the table's generation, so:

* a write through this replica is seen by its next read (the bump follows the commit);
* a write through another replica is seen once its notification arrives (milliseconds);
* while replicas cannot hear each other (the LISTEN connection is down) nothing is cached,
  and every generation moves on when they can again, since changes may have been missed.

The generation is read *before* the rows: a commit landing during the query leaves the
entry stored under a generation that is already gone, so it is never served.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, sessionmaker

_PENDING = "mcpd.changed_tables"


class Generations:
    """A counter per table name; thread-safe; listeners hear this process's own bumps."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gens: dict[str, int] = {}
        self._epoch = 0  # moved by bump_all: every table at once
        self._coherent = True  # False while other replicas' changes cannot be heard
        self._listeners: list[Callable[[frozenset[str]], None]] = []

    def of(self, table: str) -> Hashable | None:
        """``table``'s generation now, or None when reads must not be cached."""
        if not self._coherent:
            return None
        return (self._epoch, self._gens.get(table, 0))

    def bump(self, tables: Iterable[str], *, local: bool = True) -> None:
        names = frozenset(tables)
        if not names:
            return
        with self._lock:
            for name in names:
                self._gens[name] = self._gens.get(name, 0) + 1
        if local:
            for listener in list(self._listeners):
                listener(names)

    def bump_all(self) -> None:
        with self._lock:
            self._epoch += 1

    def set_coherent(self, coherent: bool) -> None:
        """Whether every other writer's changes reach this process (see mcpd.replication);
        either way every generation moves on."""
        with self._lock:
            self._coherent = coherent
            self._epoch += 1

    def follow(self, listener: Callable[[frozenset[str]], None]) -> None:
        self._listeners.append(listener)

    def unfollow(self, listener: Callable[[frozenset[str]], None]) -> None:
        self._listeners.remove(listener)

    def watch(self, sessions: sessionmaker[Session]) -> None:
        """Bump the tables each committed transaction of ``sessions`` wrote."""

        def pending(session: Session) -> set[str]:
            tables: set[str] = session.info.setdefault(_PENDING, set())
            return tables

        @event.listens_for(sessions, "after_flush")
        def _flushed(session: Session, _: UOWTransaction) -> None:
            for obj in (*session.new, *session.dirty, *session.deleted):
                table = getattr(obj, "__tablename__", None)
                if table is not None:
                    pending(session).add(table)

        @event.listens_for(sessions, "do_orm_execute")
        def _executed(state: ORMExecuteState) -> None:
            if state.is_update or state.is_delete:
                table = getattr(state.statement, "table", None)
                name = getattr(table, "name", None)
                if name is not None:
                    pending(state.session).add(name)

        @event.listens_for(sessions, "after_commit")
        def _committed(session: Session) -> None:
            self.bump(session.info.pop(_PENDING, ()))

        @event.listens_for(sessions, "after_rollback")
        def _rolled_back(session: Session) -> None:
            session.info.pop(_PENDING, None)


class ReadCache:
    """Finished responses (bytes) per (table, key), valid while the table's generation is
    the one they were computed under. Bounded: full means emptied."""

    def __init__(self, generations: Generations, max_entries: int = 1024) -> None:
        self.generations = generations
        self.max_entries = max_entries
        self._entries: dict[tuple[str, Hashable], tuple[Hashable, Any]] = {}

    def get(self, table: str, key: Hashable) -> tuple[Hashable | None, Any]:
        """(the generation to store a new value under, the cached value or None)."""
        gen = self.generations.of(table)
        if gen is None:
            return None, None
        entry = self._entries.get((table, key))
        if entry is not None and entry[0] == gen:
            return gen, entry[1]
        return gen, None

    def put(self, table: str, key: Hashable, gen: Hashable | None, value: Any) -> None:
        if gen is None:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[(table, key)] = (gen, value)
