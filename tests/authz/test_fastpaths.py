"""The load path's shortcuts give what the plain path gives, line for line.

``parse_policy_line`` matches a well-formed line with one regex and ``check_rule`` checks
all values with one; both fall back to the value-by-value checks that name what is wrong.
``parse_canonical`` takes a whole file in one match (else the caller goes line by line) and
``values_well_formed`` checks every value of many rules in one match.
Here each shortcut is held equal to that plain path on generated lines, good and bad.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authz.errors import InvalidName, PolicyError
from authz.policy import (
    _VALUE,
    RULE_ARITY,
    Rule,
    check_rule,
    gc_paused,
    parse_canonical,
    parse_policy_line,
    values_well_formed,
)
from authz.vocabulary import Subject, is_subject

#: What check_rule accepts as one value (the per-line path the bulk checks must equal).
_ONE_VALUE = _VALUE


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


CANONICAL_LINES = st.one_of(
    st.builds(
        lambda vals, eft: ", ".join(["p", *vals, eft]),
        st.lists(st.from_regex(_ONE_VALUE, fullmatch=True), min_size=5, max_size=5),
        st.sampled_from(["allow", "deny"]),
    ),
    st.builds(
        lambda t, vals: ", ".join([t, *vals]),
        st.sampled_from(["g", "g2"]),
        st.lists(st.from_regex(_ONE_VALUE, fullmatch=True), min_size=2, max_size=2),
    ),
    st.sampled_from(["", "# a comment, with p, a, b", "#"]),
)
FILES = st.lists(st.one_of(CANONICAL_LINES, CANONICAL_LINES, LINES), max_size=12).map(
    "\n".join
) | st.lists(CANONICAL_LINES, max_size=12).map(lambda ls: "\n".join(ls) + "\n")


def line_by_line(text: str) -> object:
    out = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        try:
            rule = parse_policy_line(raw, f"f:{lineno}")
        except PolicyError:
            return "error"
        if rule is not None:
            out.append((rule.ptype, rule.values, rule.source))
    return out


@settings(max_examples=500, deadline=None)
@given(FILES)
def test_a_canonical_file_parses_as_line_by_line(text: str) -> None:
    fast = parse_canonical(text, "f")
    if fast is not None:
        assert [(r.ptype, r.values, r.source) for r in fast] == line_by_line(text)
    if all(not ln or ln.startswith("#") or ", " in ln for ln in text.splitlines()) and (
        line_by_line(text) != "error" and "\t" not in text and " ," not in text
    ):
        # every line as `policy fmt` writes it: the shortcut takes the file
        canonical = all(
            ln == ", ".join(p.strip() for p in ln.split(","))
            for ln in text.splitlines()
            if ln and not ln.startswith("#")
        )
        if canonical and "\r" not in text and "\x0b" not in text and "\x0c" not in text:
            assert fast is not None


def test_a_file_with_one_odd_line_goes_line_by_line() -> None:
    assert parse_canonical("p, a, *, *, *, role:view, allow\n", "f") is not None
    assert parse_canonical("p, a, *, *, *, role:view, allow\n  # indented\n", "f") is None
    assert parse_canonical("p,a, *, *, *, role:view, allow\n", "f") is None
    assert parse_canonical("p, a, *, *, *, role:view, maybe\n", "f") is None


VALUES = st.lists(st.one_of(PIECES, st.none(), st.from_regex(_ONE_VALUE, fullmatch=True)))


@settings(max_examples=500, deadline=None)
@given(st.lists(VALUES, max_size=6))
def test_values_well_formed_equals_checking_each_value(rows: list[list[str | None]]) -> None:
    rules = [Rule("p", tuple(vals)) for vals in rows]  # type: ignore[arg-type]
    each = all(isinstance(v, str) and _ONE_VALUE.fullmatch(v) for r in rules for v in r.values)
    assert values_well_formed(rules) == each


def test_values_well_formed_sees_a_comma_inside_a_value() -> None:
    assert values_well_formed([Rule("g", ("a", "b")), Rule("g", ("c", "d"))])
    assert not values_well_formed(
        [Rule("g", ("a,b", "c")), Rule("g", ("d",))]
    )  # 3 values, 3 commas


def test_gc_paused_hands_what_it_made_to_the_oldest_generation() -> None:
    gc.collect()
    with gc_paused():
        made = [[i] for i in range(5000)]
    assert gc.get_count()[0] < 100  # the young generation is not left holding them all
    assert gc.get_freeze_count() == 0
    gc.freeze()  # a process that keeps its heap frozen (mcpd, mcplocal)...
    try:
        frozen = gc.get_freeze_count()
        with gc_paused():
            made += [[i] for i in range(10)]
        assert gc.get_freeze_count() == frozen  # ...keeps it frozen
    finally:
        gc.unfreeze()


SUBJECTS = st.builds(
    lambda kind, name: f"{kind}{name}",
    st.sampled_from(["User:", "Group:", "Group:system:", "McpToken:", "ServiceAccount:", "", "X:"]),
    st.one_of(
        st.from_regex(r"[a-z0-9][a-z0-9-]{0,70}", fullmatch=True),
        st.from_regex(r"[A-Za-z0-9._@+:-]{0,20}", fullmatch=True),
        st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
        st.text(max_size=12),
    ),
)


@settings(max_examples=1000, deadline=None)
@given(SUBJECTS)
def test_is_subject_accepts_exactly_what_subject_parse_accepts(text: str) -> None:
    try:
        Subject.parse(text)
        parsed = True
    except InvalidName:
        parsed = False
    if is_subject(text):
        assert parsed
    elif not text.endswith("\n"):  # re.match's `$` lets one trailing newline through
        assert not parsed
