"""The load path's shortcuts give what the plain path gives, line for line.

``parse_policy_line`` matches a well-formed line with one regex and ``check_rule`` checks
all values with one; both fall back to the value-by-value checks that name what is wrong.
Here each shortcut is held equal to that plain path on generated lines, good and bad.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authz.errors import PolicyError
from authz.policy import RULE_ARITY, Rule, check_rule, gc_paused, parse_policy_line

_ONE_VALUE = re.compile(r"[A-Za-z0-9._@+:*-]+")


def plain_check(ptype: str, values: tuple[str, ...]) -> Rule:
    """check_rule without its shortcut: the checks one by one."""
    if ptype not in RULE_ARITY or len(values) != RULE_ARITY[ptype]:
        raise PolicyError("shape")
    for v in values:
        if not _ONE_VALUE.fullmatch(v):
            raise PolicyError("value")
    if ptype == "p" and values[5] not in ("allow", "deny"):
        raise PolicyError("effect")
    return Rule(ptype, values)


def plain_parse(text: str) -> Rule | None:
    line = text.strip()
    if not line or line.startswith("#"):
        return None
    parts = [p.strip() for p in line.split(",")]
    return plain_check(parts[0], tuple(parts[1:]))


def outcome(fn: Callable[..., Rule | None], *args: object) -> object:
    try:
        rule = fn(*args)
    except PolicyError:
        return "error"
    return None if rule is None else (rule.ptype, rule.values)


# Pieces of policy lines, near misses included: spaces and tabs, empty values, brackets,
# quotes, a newline, non-ASCII letters and spaces, wrong effects and types.
PIECES = st.sampled_from(
    [
        "p", "g", "g2", "g3", "P", "#", "", " ", "\t", ",", ", ", " ,", "allow", "deny",
        "Allow", "User:alice", "Group:devs", "role:view", "*", "p1", "servers", "s1__t",
        "a.b@c+d-e", "x y", "(x)", '"q"', "\n", "é", "\u00a0", "\u2003", "a\nb", ":", "_",
    ]
)  # fmt: skip
LINES = st.lists(PIECES, max_size=16).map("".join)
WELL_FORMED = st.builds(
    lambda vals, eft, sp: f"{sp}p{sp},{sp}" + f"{sp},{sp}".join([*vals, eft]) + sp,
    st.lists(st.from_regex(_ONE_VALUE, fullmatch=True), min_size=5, max_size=5),
    st.sampled_from(["allow", "deny"]),
    st.sampled_from(["", " ", "  ", "\t"]),
)


@settings(max_examples=500, deadline=None)
@given(st.one_of(LINES, WELL_FORMED))
def test_parse_policy_line_equals_the_plain_parse(text: str) -> None:
    assert outcome(parse_policy_line, text, "f:1") == outcome(plain_parse, text)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["p", "g", "g2", "x"]), st.lists(PIECES, max_size=7))
def test_check_rule_equals_the_plain_checks(ptype: str, values: list[str]) -> None:
    vals = tuple(values)
    assert outcome(check_rule, ptype, vals) == outcome(plain_check, ptype, vals)


def test_gc_paused_restores_the_collector_even_on_error() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        with gc_paused():  # nested: the inner one leaves it off
            pass
        assert not gc.isenabled()
        raise RuntimeError
    assert gc.isenabled()
