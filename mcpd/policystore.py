"""Bindings made at run time, stored in mcpd's database: the database side of :mod:`authz`.

The rows live in casbin-sqlalchemy-adapter's table shape (``casbin_rule``: ptype,
v0..v5) with one extra column, ``origin``, naming the object that owns the rows
(``rbac/dev-access``, ``group/devs``), so explain can say where a rule came from and
an object's rows are replaced or removed together.

The adapter opens its own session per call and cannot join a transaction, so rows
that must commit together with the object they belong to are written here, in the
caller's session, through the adapter's table model (:class:`PolicyRuleRow`); after
the commit the caller hands the same rules to :meth:`Authorizer.apply`. The adapter
itself (:class:`PolicyAdapter`) serves Casbin tooling that loads the stored policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import casbin_sqlalchemy_adapter
from casbin import persist
from sqlalchemy import Index, Integer, String, cast, delete, func, literal, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from authz.engine import Authorizer, TokenGrant
from authz.errors import PolicyError
from authz.policy import (
    ALLOW,
    DENY,
    RULE_ARITY,
    Rule,
    check_rule,
    default_policy_dir,
    gc_paused,
    load_policy_dir,
    values_well_formed,
)


class PolicyBase(DeclarativeBase):
    """Declarative base of the policy table (mcpd's migrations create it)."""


class PolicyRuleRow(PolicyBase):
    """casbin-sqlalchemy-adapter's ``casbin_rule`` row, plus ``origin``."""

    __tablename__ = "casbin_rule"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ptype: Mapped[str] = mapped_column(String(255))
    v0: Mapped[str | None] = mapped_column(String(255))
    v1: Mapped[str | None] = mapped_column(String(255))
    v2: Mapped[str | None] = mapped_column(String(255))
    v3: Mapped[str | None] = mapped_column(String(255))
    v4: Mapped[str | None] = mapped_column(String(255))
    v5: Mapped[str | None] = mapped_column(String(255))
    origin: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        Index("ix_casbin_rule_ptype_v0", "ptype", "v0"),
        Index("ix_casbin_rule_origin", "origin"),
    )

    def __str__(self) -> str:  # the adapter loads rows through str(row)
        values = [
            v for v in (self.v0, self.v1, self.v2, self.v3, self.v4, self.v5) if v is not None
        ]
        return ", ".join([self.ptype, *values])


_COLUMNS = ("v0", "v1", "v2", "v3", "v4", "v5")


def create_policy_table(bind: Engine | Connection) -> None:
    """Create the table if it is missing (tests and tools; mcpd uses its migrations)."""
    PolicyBase.metadata.create_all(bind)


def _row_rule(row: Any) -> Rule:
    ptype, *columns, source = row
    arity = RULE_ARITY.get(ptype)
    if arity is None:
        raise PolicyError(f"unknown rule type `{ptype}`", source=source)
    values = columns[:arity]
    if None in values or any(columns[arity:]):
        raise PolicyError(f"a `{ptype}` row needs exactly {arity} values", source=source)
    return check_rule(ptype, values, source)


def _rows_rules(rows: Any) -> list[Rule] | None:
    """The rules of well-formed rows in one pass (the common case of a big table), or
    None if any row is not: then :func:`_row_rule` row by row says what is wrong."""
    rules: list[Rule] = []
    append = rules.append
    efts: set[str | None] = set()
    for ptype, v0, v1, v2, v3, v4, v5, source in rows:
        if ptype == "p":
            append(Rule("p", (v0, v1, v2, v3, v4, v5), source))
            efts.add(v5)
        elif (ptype == "g" or ptype == "g2") and not (v2 or v3 or v4 or v5):
            append(Rule(ptype, (v0, v1), source))
        else:
            return None
    if not efts <= {ALLOW, DENY} or not values_well_formed(rules):
        return None
    return rules


def load_stored_rules(bind: Engine | Connection | Session) -> list[Rule]:
    """Every stored rule in id order. A malformed row is an error, never skipped:
    dropping a deny row would grant what it forbids. Rows are read as plain tuples
    (no ORM objects), each with its source (``db:ORIGIN#ID``) made by the database."""
    t = PolicyRuleRow.__table__
    source = (
        literal("db:")
        + func.coalesce(t.c.origin, "casbin_rule")
        + literal("#")
        + cast(t.c.id, String)
    )
    stmt = select(t.c.ptype, *(t.c[c] for c in _COLUMNS), source).order_by(t.c.id)
    with gc_paused():
        if isinstance(bind, Engine):
            with bind.connect() as conn:
                rows = conn.execute(stmt).all()
        else:
            rows = bind.execute(stmt).all()
        rules = _rows_rules(rows)
        return rules if rules is not None else [_row_rule(row) for row in rows]


def write_rules(session: Session, rules: Iterable[Rule], *, origin: str) -> list[Rule]:
    """Add ``rules`` in the caller's transaction; returns them with their db source set."""
    rows = []
    for rule in rules:
        checked = check_rule(rule.ptype, rule.values)
        row = PolicyRuleRow(ptype=checked.ptype, origin=origin)
        for column, value in zip(_COLUMNS, checked.values, strict=False):
            setattr(row, column, value)
        rows.append(row)
    session.add_all(rows)
    session.flush()
    return [Rule(r.ptype, _values(r), f"db:{origin}#{r.id}") for r in rows]


def delete_rules(session: Session, *, origin: str) -> list[Rule]:
    """Delete every row ``origin`` owns, in the caller's transaction; returns them."""
    where = PolicyRuleRow.origin == origin
    rows = session.execute(select(PolicyRuleRow).where(where)).scalars().all()
    removed = [Rule(r.ptype, _values(r), f"db:{origin}#{r.id}") for r in rows]
    session.execute(delete(PolicyRuleRow).where(where))
    return removed


def _values(row: PolicyRuleRow) -> tuple[str, ...]:
    return tuple(v for v in (row.v0, row.v1, row.v2, row.v3, row.v4, row.v5) if v is not None)


class PolicyAdapter(casbin_sqlalchemy_adapter.Adapter):  # type: ignore[misc]
    """casbin-sqlalchemy-adapter over the stored rules, loading the policy files first.

    ``casbin.Enforcer(model, PolicyAdapter(engine, policy_dir))`` is the plain Casbin
    view of the whole policy: what the tests hold the index equal to.
    """

    def __init__(self, engine: Engine, policy_dir: Path | None = None) -> None:
        super().__init__(engine, db_class=PolicyRuleRow, create_all_models=False)
        self._policy_dir = policy_dir or default_policy_dir()

    def load_policy(self, model: Any) -> None:
        for rule in load_policy_dir(self._policy_dir):
            persist.load_policy_line(str(rule), model)
        super().load_policy(model)


def load_authorizer(
    engine: Engine,
    *,
    tokens: Iterable[TokenGrant] = (),
    model_path: Path | None = None,
    policy_dir: Path | None = None,
) -> Authorizer:
    """An Authorizer over the policy files plus every rule stored in ``engine``'s database."""
    return Authorizer(
        model_path=model_path,
        policy_dir=policy_dir,
        stored=load_stored_rules(engine),
        tokens=tokens,
    )
