"""Stored bindings in a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import casbin
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from authz import Authorizer, PolicyError
from authz.policy import Rule
from authz.reference import load_model
from authz.vocabulary import tool_server
from mcpd.policystore import (
    PolicyAdapter,
    PolicyRuleRow,
    _row_rule,
    _rows_rules,
    create_policy_table,
    delete_rules,
    load_authorizer,
    load_stored_rules,
    write_rules,
)


def test_rules_written_in_a_transaction_load_back_in_order(db_engine: sa.Engine) -> None:
    create_policy_table(db_engine)
    a = Authorizer()
    grants = [
        a.parse_binding("role:edit,resource:servers,project:web").to_rule("User:alice"),
        Rule("g", ("User:bob", "Group:devs")),
        a.parse_binding("role:view,resource:*").to_rule("Group:devs"),
    ]
    with Session(db_engine) as s, s.begin():
        written = write_rules(s, grants, origin="rbac/dev-access")
    assert [r.source.split("#")[0] for r in written] == ["db:rbac/dev-access"] * 3
    loaded = load_stored_rules(db_engine)
    assert loaded == grants  # same rules, same order
    assert all(r.source.startswith("db:rbac/dev-access#") for r in loaded)

    authz = load_authorizer(db_engine)
    assert authz.decide("User:alice", "web", "servers", "x", "update").allowed
    assert authz.decide("User:bob", "any", "secrets", "s", "get").allowed
    d = authz.decide("User:bob", "any", "secrets", "s", "delete")
    assert not d.allowed


def test_failed_transaction_writes_nothing(db_engine: sa.Engine) -> None:
    create_policy_table(db_engine)
    a = Authorizer()
    rule = a.parse_binding("role:admin,resource:*").to_rule("User:mallory")
    with pytest.raises(RuntimeError), Session(db_engine) as s, s.begin():
        write_rules(s, [rule], origin="rbac/x")
        raise RuntimeError("the object this rule belongs to failed to save")
    assert load_stored_rules(db_engine) == []


def test_delete_by_origin_returns_exactly_that_objects_rules(db_engine: sa.Engine) -> None:
    create_policy_table(db_engine)
    a = Authorizer()
    keep = a.parse_binding("role:view,resource:servers").to_rule("User:a")
    drop = a.parse_binding("role:edit,resource:servers").to_rule("User:a")
    with Session(db_engine) as s, s.begin():
        write_rules(s, [keep], origin="rbac/keep")
        write_rules(s, [drop, drop], origin="rbac/drop")
    authz = load_authorizer(db_engine)
    assert authz.decide("User:a", "", "servers", "x", "update").allowed
    with Session(db_engine) as s, s.begin():
        removed = delete_rules(s, origin="rbac/drop")
    assert removed == [drop, drop]
    authz.apply(removed=removed)
    assert load_stored_rules(db_engine) == [keep]
    assert not authz.decide("User:a", "", "servers", "x", "update").allowed
    assert authz.decide("User:a", "", "servers", "x", "get").allowed


@pytest.mark.parametrize(
    ("ptype", "values", "message"),
    [
        ("p", ("User:a", "*", "servers", "*", "role:edit", None), "needs exactly 6 values"),
        ("p", ("User:a", "*", "servers", "a,b", "role:edit", "allow"), "value `a,b`"),
        ("p", ("User:a", "*", "servers", "*", "role:edit", "maybe"), "effect `maybe`"),
        ("x", ("a", "b", None, None, None, None), "unknown rule type `x`"),
    ],
)
def test_a_corrupt_row_fails_loading_instead_of_being_skipped(
    db_engine: sa.Engine, ptype: str, values: tuple[str | None, ...], message: str
) -> None:
    # A skipped deny row would grant what it forbids: loading must refuse.
    create_policy_table(db_engine)
    cols = dict(zip(("v0", "v1", "v2", "v3", "v4", "v5"), values, strict=True))
    with Session(db_engine) as s, s.begin():
        s.add(PolicyRuleRow(ptype=ptype, origin="rbac/bad", **cols))
    with pytest.raises(PolicyError) as err:
        load_stored_rules(db_engine)
    assert message in str(err.value)
    assert "db:rbac/bad#" in str(err.value)


VALUE = st.sampled_from(
    [None, "", "User:a", "Group:devs", "*", "servers", "role:edit", "allow", "deny", "a,b",
     "x y", "x)", "maybe", "é", "a\nb"]
)  # fmt: skip
ROW = st.tuples(st.sampled_from(["p", "g", "g2", "x"]), *[VALUE] * 6, st.just("db:rbac/x#1"))


def row_by_row(rows: list[tuple[str | None, ...]]) -> object:
    try:
        return [_row_rule(row) for row in rows]
    except PolicyError:
        return "error"


@settings(max_examples=500, deadline=None)
@given(st.lists(ROW, max_size=6))
def test_the_one_pass_row_reading_equals_reading_row_by_row(
    rows: list[tuple[str | None, ...]],
) -> None:
    fast = _rows_rules(rows)
    if fast is not None:
        assert [(r.ptype, r.values, r.source) for r in fast] == [
            (r.ptype, r.values, r.source)
            for r in row_by_row(rows)  # type: ignore[attr-defined]
        ]
    else:
        assert rows, "an empty table reads in one pass"


def test_well_formed_rows_read_in_one_pass() -> None:
    rows = [
        ("p", "User:a", "*", "servers", "*", "role:edit", "deny", "db:rbac/x#1"),
        ("g", "User:a", "Group:devs", None, None, None, None, "db:group/devs#2"),
        ("g2", "get", "role:view", "", "", None, None, "db:casbin_rule#3"),
    ]
    assert _rows_rules(rows) == row_by_row(rows)
    assert (
        _rows_rules([*rows, ("p", "User:a", "*", "servers", "a,b", "role:edit", "allow", "s")])
        is None
    )


def test_write_refuses_values_that_would_break_a_policy_row(db_engine: sa.Engine) -> None:
    create_policy_table(db_engine)
    bad = Rule("p", ("User:a", "*", "servers", "x)", "role:edit", "allow"))
    with pytest.raises(PolicyError), Session(db_engine) as s, s.begin():
        write_rules(s, [bad], origin="rbac/x")
    assert load_stored_rules(db_engine) == []


def test_casbin_adapter_sees_the_same_policy_as_the_index(db_engine: sa.Engine) -> None:
    """The stored rules through casbin-sqlalchemy-adapter decide like our engine."""
    create_policy_table(db_engine)
    a = Authorizer()
    rules = [
        a.parse_binding("role:run,resource:servers,name:github,project:web").to_rule("Group:devs"),
        Rule("g", ("User:bob", "Group:devs")),
        Rule("p", ("User:bob", "*", "tools", "github__delete_repo", "role:run", "deny")),
    ]
    with Session(db_engine) as s, s.begin():
        write_rules(s, rules, origin="rbac/t")
    authz = load_authorizer(db_engine)
    enforcer = casbin.Enforcer(load_model(authz.model_path), PolicyAdapter(db_engine))
    enforcer.add_function("toolServer", tool_server)
    requests = [
        ("User:bob", "web", "tools", "github__create_issue", "run"),
        ("User:bob", "web", "tools", "github__delete_repo", "run"),
        ("User:bob", "ops", "tools", "github__create_issue", "run"),
        ("User:bob", "web", "servers", "github", "run"),
        ("User:bob", "web", "servers", "github", "get"),
        ("User:eve", "web", "servers", "github", "run"),
    ]
    got = [authz.decide(*r).allowed for r in requests]
    assert got == [enforcer.enforce(*r) for r in requests]
    assert got == [True, False, False, True, False, False]
