"""Audit events: every mutation and every deny, in the transaction of what it records;
and tool calls, each once (:func:`ingest`).

Every event has an id made where the decision was (``event_id``, a uuid) and the policy
revision it was decided under (``policy_revision``, :mod:`authz.revision`). A proxy's
records come with their own ids, so a batch sent again after a lost answer is recorded
once: :func:`ingest` skips ids already committed, whoever committed them.
"""

from __future__ import annotations

import json
import sqlite3
import weakref
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final, overload

from sqlalchemy import text, update
from sqlalchemy.orm import Session

from mcpd.models import AuditEvent, McpToken, utcnow
from mcpd.principal import Principal
from upstream import ids


def record(
    session: Session,
    principal: Principal,
    *,
    action: str,
    kind: str,
    name: str = "",
    project: str = "",
    outcome: str = "allow",
    request_id: str = "",
    detail: dict[str, Any] | None = None,
    revision: str | None = None,
    event_id: str | None = None,
) -> None:
    """Add an audit event to ``session``; it commits (or not) with the caller's change.

    Values come from requests, including denied malformed ones, so each is made to fit its
    column (PostgreSQL refuses over-long strings and NUL characters): a deny is always audited.
    """
    session.add(AuditEvent(**row(principal, action=action, kind=kind, name=name,
                                 project=project, outcome=outcome, request_id=request_id,
                                 detail=detail, revision=revision, event_id=event_id)))  # fmt: skip


def row(
    principal: Principal,
    *,
    action: str,
    kind: str,
    name: str = "",
    project: str = "",
    outcome: str = "allow",
    request_id: str = "",
    detail: dict[str, Any] | None = None,
    revision: str | None = None,
    event_id: str | None = None,
    time: datetime | None = None,
) -> dict[str, Any]:
    """The column values of one audit event (see :func:`record`)."""
    return {
        "event_id": event_id or ids.event_id(),
        "time": utcnow() if time is None else _utc(time),
        "subject": _fit(principal.user or principal.token_name or principal.subject, 255),
        "token_name": _fit(principal.token_name, 255),
        "token_sha": principal.token_sha,
        "action": _fit(action, 63),
        "kind": _fit(kind, 63),
        "name": _fit(name, 255),
        "project": _fit(project, 63),
        "outcome": outcome,
        "request_id": _fit(request_id, 64),
        "detail": detail or {},
        "policy_revision": _fit(revision, 16),
    }


def ingest(session: Session, rows: Iterable[dict[str, Any]]) -> int:
    """Insert events made by :func:`row` in one statement, skipping any whose
    ``event_id`` is already recorded (by this replica or another); the number inserted.
    The caller commits."""
    values = list(rows)
    if not values:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        return _ingest_postgresql(session, values)
    return _ingest_sqlite(session, values)


_COLUMNS: Final = (
    "event_id", "time", "subject", "token_name", "token_sha", "action", "kind", "name",
    "project", "outcome", "request_id", "detail", "policy_revision",
)  # fmt: skip
_NAMES: Final = ", ".join(_COLUMNS)
_SQLITE_INSERT: Final = (
    f"INSERT INTO audit_events ({_NAMES}) VALUES ({', '.join('?' * len(_COLUMNS))})"  # noqa: S608
    " ON CONFLICT (event_id) DO NOTHING"
)


def _ingest_sqlite(session: Session, values: list[dict[str, Any]]) -> int:
    """SQLite: one executemany of one plain statement on the session's own connection (in
    its transaction), each value made as the column's type makes it (the same stored text
    as through the ORM). Through SQLAlchemy's statement (RETURNING, "insertmanyvalues") a
    lone record with its session and commit cost ~215 us of CPU, most of a relayed call's
    audit; this way ~100 (the session and commit alone are ~40). The
    connection's change count leaves out the ids recorded before."""
    raw = session.connection().connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    convert = _sqlite_binds(session)
    params = [tuple(c(v[name]) for name, c in convert) for v in values]
    before = raw.total_changes
    raw.executemany(_SQLITE_INSERT, params)
    return raw.total_changes - before


def _sqlite_binds(session: Session) -> list[tuple[str, Any]]:
    """Each column's value as SQLite's dialect binds it (times as text, detail as JSON)."""
    dialect = session.get_bind().dialect
    converters = _BINDS.get(dialect)
    if converters is None:
        table: Any = AuditEvent.__table__
        types = [(n, table.c[n].type.dialect_impl(dialect)) for n in _COLUMNS]
        converters = [(n, t.bind_processor(dialect) or _same) for n, t in types]
        _BINDS[dialect] = converters
    return converters


def _same(value: Any) -> Any:
    return value


_BINDS: weakref.WeakKeyDictionary[Any, list[tuple[str, Any]]] = weakref.WeakKeyDictionary()


#: PostgreSQL: the batch is one JSON array of :func:`row`'s values, made rows by the server
_RECORDSET: Final = text(
    f"INSERT INTO audit_events ({_NAMES}) SELECT {_NAMES}"  # noqa: S608 (constant names)
    " FROM json_populate_recordset(NULL::audit_events, CAST(:rows AS json))"
    " ON CONFLICT (event_id) DO NOTHING RETURNING id"
)


def _ingest_postgresql(session: Session, values: list[dict[str, Any]]) -> int:
    """The batch as one JSON parameter, unpacked into rows by PostgreSQL: a short statement
    whatever the batch's size. (An executemany's "insertmanyvalues" is one long statement
    with a parameter for each value, which psycopg parses again on every call: ~140 us of
    mcpd's CPU per record; this is ~10.)"""
    rows = [{**v, "time": v["time"].isoformat()} for v in values]
    return len(session.execute(_RECORDSET, {"rows": json.dumps(rows, ensure_ascii=False)}).all())


def touch_tokens(session: Session, shas: set[str]) -> None:
    """A token's LAST USED moves on with each call audited for it (made through mcpd or a
    proxy alike). A Core statement: the ORM's bulk update would look for the tokens among
    the session's objects first (~0.5 ms a batch, for nothing)."""
    if shas:
        table: Any = McpToken.__table__
        session.execute(
            update(table).where(table.c.token_sha.in_(sorted(shas))).values(last_used_at=utcnow())
        )


def write_calls(session: Session, rows: list[dict[str, Any]]) -> None:
    """Commit ``tools/call`` records (mcpd's own endpoint; a group commit's write)."""
    ingest(session, rows)
    touch_tokens(session, {r["token_sha"] for r in rows if r.get("token_sha")})
    session.commit()


def _utc(t: datetime) -> datetime:
    """``t`` in UTC (SQLite keeps a time's digits, not its offset); a naive time (a proxy's,
    sent without its offset) is UTC, as everywhere in mcpd."""
    return t.astimezone(UTC) if t.tzinfo is not None else t.replace(tzinfo=UTC)


@overload
def _fit(value: str, limit: int) -> str: ...
@overload
def _fit(value: None, limit: int) -> None: ...
def _fit(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = value.replace("\x00", "\N{REPLACEMENT CHARACTER}")
    return value if len(value) <= limit else value[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"
