"""Policy rules, the model file, and loading policy files with their line numbers."""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Final

from authz.errors import PolicyError

#: Number of values of each rule type in model.conf.
RULE_ARITY: Final = {"p": 6, "g": 2, "g2": 2}

#: Characters a rule value may contain. Commas split rows and brackets confuse Casbin's
#: CSV reader; quotes and spaces have no meaning here. Anything else is refused.
_CHARS = r"A-Za-z0-9._@+:*/?=&%#~-"
_VALUE = re.compile(rf"[{_CHARS}]+")

ALLOW: Final = "allow"
DENY: Final = "deny"


@dataclass(frozen=True, slots=True)
class Rule:
    """One policy line: ``ptype`` (p, g or g2) and its values, plus where it came from.

    ``source`` is ``path:line`` for a policy file or ``db:ORIGIN#ID`` for a stored rule.
    Equality and hashing use only ``ptype`` and ``values``.
    """

    ptype: str
    values: tuple[str, ...]
    source: str = field(default="", compare=False)

    def __str__(self) -> str:
        return ", ".join((self.ptype, *self.values))

    @property
    def sub(self) -> str:
        return self.values[0]

    @property
    def eft(self) -> str:
        return self.values[5] if self.ptype == "p" else ""


def check_rule(ptype: str, values: Iterable[str], source: str = "") -> Rule:
    """Validate the shape of a rule (type, arity, characters) and return it."""
    vals = tuple(values)
    # The common case in one regex over all values (none empty, every character allowed);
    # anything else goes through the checks below, which name what is wrong.
    if (
        RULE_ARITY.get(ptype) == len(vals)
        and all(vals)
        and _VALUE.fullmatch("".join(vals))
        and (ptype != "p" or vals[5] in (ALLOW, DENY))
    ):
        return Rule(ptype, vals, source)
    if ptype not in RULE_ARITY:
        raise PolicyError(
            f"unknown rule type `{ptype}`: expected one of p, g, g2", source=source or None
        )
    if len(vals) != RULE_ARITY[ptype]:
        raise PolicyError(
            f"a `{ptype}` line has {RULE_ARITY[ptype]} values after the type, "
            f"this one has {len(vals)}",
            source=source or None,
        )
    for v in vals:
        if not _VALUE.fullmatch(v):
            raise PolicyError(
                f"value `{v}` is not allowed: use letters, digits and . _ @ + : * - "
                "(and / ? = & % # ~ in a resource's URI)",
                source=source or None,
            )
    if ptype == "p" and vals[5] not in (ALLOW, DENY):
        raise PolicyError(
            f"effect `{vals[5]}` is unknown: expected `allow` or `deny`", source=source or None
        )
    return Rule(ptype, vals, source)


#: Values joined by commas, each well formed (and so none empty); one match for many rules.
_VALUES = re.compile(rf"[{_CHARS}]+(?:,[{_CHARS}]+)*")


def values_well_formed(rules: list[Rule]) -> bool:
    """Is every value of every rule a non-empty string of the allowed characters (as
    :func:`check_rule` requires)? One regex over all of them: a bulk load's check."""
    values = [v for rule in rules for v in rule.values]
    if not values:
        return True
    try:
        text = ",".join(values)
    except TypeError:  # a value that is not a string (e.g. a NULL column)
        return False
    # As many commas as separators: no value holds one, so each match is one value.
    return text.count(",") == len(values) - 1 and _VALUES.fullmatch(text) is not None


_V = rf"\s*,\s*([{_CHARS}]+)"
#: A well-formed line of each type in one match (the common case of a big file); any
#: other line goes through :func:`check_rule`, which names what is wrong with it.
_WELL_FORMED = {
    "p": re.compile(r"\s*p" + _V * 5 + r"\s*,\s*(allow|deny)\s*"),
    "g": re.compile(r"\s*g" + _V * 2 + r"\s*"),
    "g2": re.compile(r"\s*g2" + _V * 2 + r"\s*"),
}


def parse_policy_line(text: str, source: str) -> Rule | None:
    """Parse one CSV policy line; ``None`` for blank lines and comments."""
    line = text.strip()
    if not line or line[0] == "#":
        return None
    ptype = "g2" if line.startswith("g2") else line[0]  # a guess the full match confirms
    well_formed = _WELL_FORMED.get(ptype)
    m = well_formed.fullmatch(line) if well_formed else None
    if m:
        return Rule(ptype, m.groups(), source)
    parts = [p.strip() for p in line.split(",")]
    return check_rule(parts[0], parts[1:], source)


_C = rf", [{_CHARS}]+"
#: A file whose every line is a rule as ``policy fmt`` writes it (one ", " between values),
#: a comment starting in column 0, or empty: the common case of a big file, checked in one
#: match and then split without a regex per line.
_CANONICAL_FILE = re.compile(
    r"(?:(?:p" + _C * 5 + r", (?:allow|deny)|g2?" + _C * 2 + r"|#[^\n]*|)\n)*"
)


def parse_canonical(text: str, name: str) -> list[Rule] | None:
    """The rules of ``text`` if every line is canonical (see ``_CANONICAL_FILE``), as
    :func:`parse_policy_line` gives them line by line; else None."""
    if not text.endswith("\n"):
        text += "\n"
    if _CANONICAL_FILE.fullmatch(text) is None:
        return None
    return [
        Rule(parts[0], tuple(parts[1:]), f"{name}:{lineno}")
        for lineno, line in enumerate(text.splitlines(), start=1)
        if line and line[0] != "#"
        for parts in (line.split(", "),)
    ]


def iter_policy_file(path: Path, display: str | None = None) -> Iterator[Rule]:
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read policy file: {exc}", source=name) from exc
    canonical = parse_canonical(text, name)
    if canonical is not None:
        yield from canonical
        return
    for lineno, raw in enumerate(text.splitlines(), start=1):
        rule = parse_policy_line(raw, f"{name}:{lineno}")
        if rule is not None:
            yield rule


def policy_files(policy_dir: Path) -> list[Path]:
    if not policy_dir.is_dir():
        raise PolicyError(f"policy directory `{policy_dir}` does not exist")
    files = sorted(p for p in policy_dir.iterdir() if p.suffix == ".csv" and p.is_file())
    if not files:
        raise PolicyError(f"policy directory `{policy_dir}` has no .csv files")
    return files


def load_policy_dir(policy_dir: Path) -> list[Rule]:
    """Every rule of every ``*.csv`` file in ``policy_dir``, files in name order."""
    rules: list[Rule] = []
    with gc_paused():
        for path in policy_files(policy_dir):
            rules.extend(iter_policy_file(path, display=f"{policy_dir.name}/{path.name}"))
    return rules


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run a bulk load without the cyclic garbage collector.

    Building 100k rules allocates only acyclic objects (strings, tuples, rules, dicts), yet
    each allocation burst triggers collections that walk the whole growing heap: about
    half of a load's CPU. Reference counting still frees everything; the collector is
    re-enabled (if it was on) on the way out, whatever happens.

    Re-enabled as is, the collector's first young collection would still walk everything
    the load made (all of it young), and later ones again as it ages: ~0.1-0.2 s after a
    100k-line load. So on the way out what survives is handed straight to the oldest
    generation (``gc.freeze`` then ``gc.unfreeze``: moving lists, no walk), where only a
    full collection looks at it - once the heap has grown by a quarter. Nothing escapes
    the collector. Skipped when the process keeps objects frozen itself (mcpd and
    mcplocal freeze their heap once started): unfreezing would undo that."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        if was_enabled:
            gc.enable()


def default_model_path() -> Path:
    """The model file: ``$MCPCTL_MODEL`` or the one shipped inside the package."""
    env = os.environ.get("MCPCTL_MODEL")
    if env:
        return Path(env)
    return Path(str(resources.files("authz").joinpath("model.conf")))


def default_policy_dir() -> Path:
    """The policy files: ``$MCPCTL_POLICY_DIR`` or the ones shipped inside the package."""
    env = os.environ.get("MCPCTL_POLICY_DIR")
    if env:
        return Path(env)
    return Path(str(resources.files("authz").joinpath("policies")))
