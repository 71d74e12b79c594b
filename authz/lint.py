"""``mcpctl policy lint``: check the model and the policy files before they load.

:func:`lint` reads every ``*.csv`` file of a policy directory line by line and returns
one :class:`LintIssue` per finding, each pointing at ``path:line`` (or at a file):

errors - the engine would refuse the line, or it cannot mean what it says
    ``unknown-rule-type``, ``wrong-arity``, ``bad-character``, ``empty-value``,
    ``bad-effect``, ``bad-subject``, ``bad-group`` (a ``g`` parent that is not a group),
    ``bad-role-definition`` (a ``g2`` right side that is not ``role:X`` or ``action:X``),
    ``unknown-role``, ``unknown-operation``, ``bad-act``, ``operation-scope`` (an
    operation bound on one kind or object), ``unknown-kind``, ``bad-project``,
    ``bad-name``, ``cycle``, ``too-deep`` (a ``g``/``g2`` chain Casbin does not follow
    to its end), ``bad-model``, ``unreadable``, ``bad-policy-dir``
warnings - the line loads but is probably a mistake
    ``verb-binding`` (a ``p`` line on a bare verb), ``unknown-member`` (a ``g2`` member
    that is no known verb, role or operation), ``duplicate``, ``shadowed`` (an allow
    made redundant by a wider allow of the same subject), ``overridden`` (an allow that
    a deny of the same subject cancels entirely), ``model-differs``

"Same subject" means the same subject string: lines of a group and of its members are
not compared.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from authz.errors import InvalidName, PolicyError
from authz.policy import ALLOW, DENY, RULE_ARITY, Rule, check_rule, parse_policy_line, policy_files
from authz.reference import load_model, model_differences
from authz.vocabulary import (
    ANY,
    CRUD_VERBS,
    KINDS,
    OPERATION_PREFIX,
    ROLE_PREFIX,
    Subject,
    check_dns_label,
    check_object_name,
    check_verb,
    tool_server,
)

__all__ = ["MAX_HIERARCHY_LEVEL", "LintIssue", "Severity", "format_issue", "lint"]

#: Casbin's role manager default (``max_hierarchy_level``): from a request's subject or
#: verb it follows at most ``MAX_HIERARCHY_LEVEL - 1`` links, so a chain of that many
#: links or more has a top the bottom never reaches. :class:`authz.index.PolicyIndex` agrees.
MAX_HIERARCHY_LEVEL: Final = 10

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class LintIssue:
    """One finding: where (``path:line`` or a file path), how bad, a short code, and why."""

    severity: Severity
    source: str
    code: str
    message: str

    @property
    def location(self) -> tuple[str, int]:
        """``(path, line)``; line 0 for an issue about a whole file."""
        path, sep, line = self.source.rpartition(":")
        if sep and line.isdigit():
            return path, int(line)
        return self.source, 0


def format_issue(issue: LintIssue) -> str:
    """``path:line: error: message [code]``, the shape compilers and linters print."""
    return f"{issue.source}: {issue.severity}: {issue.message} [{issue.code}]"


def lint(policy_dir: Path, model_path: Path) -> list[LintIssue]:
    """Every problem of the model at ``model_path`` and the policy files in ``policy_dir``.

    Sorted by file and line. CI fails on any issue; an ``error`` is a line the engine
    refuses or that cannot do what it says, a ``warning`` one that is probably a mistake.
    """
    issues: list[LintIssue] = _lint_model(model_path)
    rules = _read_rules(policy_dir, issues)
    issues.extend(_Checker(rules).issues())
    return sorted(issues, key=lambda i: (*i.location, i.code, i.message))


def _error(source: str, code: str, message: str) -> LintIssue:
    return LintIssue("error", source, code, message)


def _warning(source: str, code: str, message: str) -> LintIssue:
    return LintIssue("warning", source, code, message)


def _bare(exc: PolicyError) -> str:
    text = str(exc)
    return text.removeprefix(f"{exc.source}: ") if exc.source else text


# -- the model -------------------------------------------------------------------------


def _lint_model(model_path: Path) -> list[LintIssue]:
    try:
        model = load_model(model_path)
    except PolicyError as exc:
        return [_error(str(model_path), "bad-model", _bare(exc))]
    diffs = model_differences(model)
    if not diffs:
        return []
    return [
        _warning(
            str(model_path),
            "model-differs",
            "model differs from the one the index implements, so decisions fall back to "
            "the plain enforcer (slow): " + "; ".join(diffs),
        )
    ]


# -- reading lines -----------------------------------------------------------------------


def _read_rules(policy_dir: Path, issues: list[LintIssue]) -> list[Rule]:
    """Every line that parses, in file and line order; an issue for every one that does not."""
    try:
        files = policy_files(policy_dir)
    except PolicyError as exc:
        issues.append(_error(str(policy_dir), "bad-policy-dir", _bare(exc)))
        return []
    rules: list[Rule] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            issues.append(_error(str(path), "unreadable", f"cannot read policy file: {exc}"))
            continue
        for lineno, raw in enumerate(text.splitlines(), start=1):
            source = f"{path}:{lineno}"
            try:
                rule = parse_policy_line(raw, source)
            except PolicyError as exc:
                issues.append(_parse_issue(raw, source, _bare(exc)))
                continue
            if rule is not None:
                rules.append(rule)
    return rules


def _parse_issue(raw: str, source: str, message: str) -> LintIssue:
    """Name what :func:`check_rule` refused, in the order it checks."""
    ptype, *values = (part.strip() for part in raw.strip().split(","))
    if ptype not in RULE_ARITY:
        return _error(source, "unknown-rule-type", message)
    if len(values) != RULE_ARITY[ptype]:
        return _error(source, "wrong-arity", message)
    empty = [str(i) for i, v in enumerate(values, start=1) if not v]
    if empty:
        which = "value " + empty[0] if len(empty) == 1 else "values " + ", ".join(empty)
        return _error(source, "empty-value", f"{which} after `{ptype}` is empty")
    if ptype == "p" and values[5] not in (ALLOW, DENY):
        try:  # is the effect the only thing wrong, and only its word?
            check_rule(ptype, (*values[:5], ALLOW))
            check_rule("g", (values[5], values[5]))
        except PolicyError:
            return _error(source, "bad-character", message)
        return _error(source, "bad-effect", message)
    return _error(source, "bad-character", message)


# -- checking what parsed ------------------------------------------------------------------


class _Checker:
    """The checks that need the whole policy: vocabulary, duplicates, shadows, graphs."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        g2 = [r.values for r in rules if r.ptype == "g2"]
        self.roles = {parent for _, parent in g2 if parent.startswith(ROLE_PREFIX)}
        self.operations = {parent for _, parent in g2 if parent.startswith(OPERATION_PREFIX)}
        operation_verbs = {
            child
            for child, parent in g2
            if parent.startswith(OPERATION_PREFIX)
            and not child.startswith((ROLE_PREFIX, OPERATION_PREFIX))
        }
        self.verbs = set(CRUD_VERBS) | operation_verbs
        self._down: dict[str, set[str]] = {}
        for child, parent in g2:
            self._down.setdefault(parent, set()).add(child)
        self._members: dict[str, set[str]] = {}

    def issues(self) -> list[LintIssue]:
        out: list[LintIssue] = []
        for rule in self.rules:
            if rule.ptype == "p":
                out.extend(self._check_p(rule))
            elif rule.ptype == "g":
                out.extend(self._check_g(rule))
            else:
                out.extend(self._check_g2(rule))
        out.extend(self._duplicates())
        out.extend(self._shadows())
        for ptype in ("g", "g2"):
            out.extend(_GraphCheck(ptype, [r for r in self.rules if r.ptype == ptype]).issues())
        return out

    # vocabulary

    def _check_p(self, rule: Rule) -> Iterator[LintIssue]:
        sub, proj, kind, name, _, _ = rule.values
        src = rule.source
        try:
            Subject.parse(sub)
        except InvalidName as exc:
            yield _error(src, "bad-subject", str(exc))
        if proj != ANY:
            try:
                check_dns_label(proj, "project")
            except InvalidName as exc:
                yield _error(src, "bad-project", str(exc))
        if kind != ANY and kind not in KINDS:
            yield _error(
                src, "unknown-kind", f"resource kind `{kind}` is unknown; kinds: {', '.join(KINDS)}"
            )
        if name != ANY:
            try:
                check_object_name(name, "tools" if kind == "tools" else None)
            except InvalidName as exc:
                yield _error(src, "bad-name", str(exc))
        yield from self._check_act(rule)

    def _check_act(self, rule: Rule) -> Iterator[LintIssue]:
        _, _, kind, name, act, _ = rule.values
        src = rule.source
        if act.startswith(ROLE_PREFIX):
            if act not in self.roles:
                yield _error(
                    src,
                    "unknown-role",
                    f"role `{act}` is not defined: no `g2` line has it on its right side",
                )
        elif act.startswith(OPERATION_PREFIX):
            if act not in self.operations:
                yield _error(
                    src,
                    "unknown-operation",
                    f"operation `{act}` is not defined: no `g2` line has it on its right side",
                )
            if kind != ANY or name != ANY:
                yield _error(
                    src,
                    "operation-scope",
                    f"operation `{act}` is bound on `{kind}/{name}`: an operation applies to "
                    "every resource, so kind and name must be `*`",
                )
        else:
            if not _is_verb(act):
                yield _error(
                    src,
                    "bad-act",
                    f"`{act}` is not a role (`role:NAME`), an operation (`action:NAME`) or a verb",
                )
                return
            unknown = "" if act in self.verbs else " (and no role or operation includes it)"
            yield _warning(
                src,
                "verb-binding",
                f"`{act}` is a verb{unknown}: bind a role or operation, not a verb",
            )

    def _check_g(self, rule: Rule) -> Iterator[LintIssue]:
        child, parent = rule.values
        try:
            Subject.parse(child)
        except InvalidName as exc:
            yield _error(rule.source, "bad-subject", str(exc))
        try:
            group = Subject.parse(parent)
        except InvalidName as exc:
            yield _error(rule.source, "bad-group", f"{exc}; the right side of `g` is a group")
            return
        if group.type != "Group":
            yield _error(
                rule.source,
                "bad-group",
                f"`{parent}` is not a group: the right side of a `g` line is `Group:<name>`",
            )

    def _check_g2(self, rule: Rule) -> Iterator[LintIssue]:
        child, parent = rule.values
        prefix = next((p for p in (ROLE_PREFIX, OPERATION_PREFIX) if parent.startswith(p)), "")
        if not prefix or not _is_verb(parent.removeprefix(prefix)):
            yield _error(
                rule.source,
                "bad-role-definition",
                f"`{parent}` is neither `role:NAME` nor `action:NAME` (NAME of lowercase "
                "letters, digits and '-'): a `g2` line defines a role or an operation",
            )
        if child not in self.verbs and child not in self.roles and child not in self.operations:
            what = "role" if child.startswith(ROLE_PREFIX) else "operation"
            detail = (
                f"no `g2` line defines the {what}"
                if child.startswith((ROLE_PREFIX, OPERATION_PREFIX))
                else "known verbs: " + ", ".join(sorted(self.verbs))
            )
            yield _warning(
                rule.source,
                "unknown-member",
                f"`{child}` is neither a known verb, a role nor an operation ({detail})",
            )

    # duplicates and shadows

    def _duplicates(self) -> Iterator[LintIssue]:
        first: dict[Rule, Rule] = {}
        for rule in self.rules:
            seen = first.setdefault(rule, rule)
            if seen is not rule:
                yield _warning(
                    rule.source, "duplicate", f"duplicate of {seen.source}: `{rule}` appears twice"
                )

    def _includes(self, big: str, small: str) -> bool:
        """Whether role or operation ``big`` includes ``small`` through ``g2`` (or is it)."""
        if big == small:
            return True
        members = self._members.get(big)
        if members is None:
            members, stack = set(), [big]
            while stack:
                for child in self._down.get(stack.pop(), ()):
                    if child not in members:
                        members.add(child)
                        stack.append(child)
            self._members[big] = members
        return small in members

    def _covers(self, outer: Rule, inner: Rule) -> bool:
        """Whether ``outer`` matches every request ``inner`` matches."""
        return _scope_covers(outer, inner) and self._includes(outer.values[4], inner.values[4])

    def _shadows(self) -> Iterator[LintIssue]:
        by_subject: dict[str, list[tuple[int, Rule]]] = {}
        for pos, rule in enumerate(self.rules):
            if rule.ptype == "p":
                by_subject.setdefault(rule.sub, []).append((pos, rule))
        for lines in by_subject.values():
            allows = [(pos, r) for pos, r in lines if r.eft == ALLOW]
            denies = [r for _, r in lines if r.eft == DENY]
            for pos, rule in allows:
                deny = next((d for d in denies if self._covers(d, rule)), None)
                if deny is not None:
                    yield _warning(
                        rule.source,
                        "overridden",
                        f"this allow never takes effect: the deny {deny.source} (`{deny}`) "
                        f"covers its whole scope and `{rule.values[4]}`",
                    )
                    continue
                wider = next(
                    (
                        other
                        for opos, other in allows
                        if other != rule
                        and self._covers(other, rule)
                        and (opos < pos or not self._covers(rule, other))
                    ),
                    None,
                )
                if wider is not None:
                    yield _warning(
                        rule.source,
                        "shadowed",
                        f"this allow is redundant: {wider.source} (`{wider}`) already allows "
                        "the same subject all of it",
                    )


def _is_verb(value: str) -> bool:
    try:
        check_verb(value)
    except InvalidName:
        return False
    return True


def _scope_covers(outer: Rule, inner: Rule) -> bool:
    """Whether ``outer``'s project and object match every request ``inner``'s do."""
    _, oproj, okind, oname, _, _ = outer.values
    _, iproj, ikind, iname, _, _ = inner.values
    if oproj not in (ANY, iproj):
        return False
    if okind in (ANY, ikind) and oname in (ANY, iname):
        return True
    # A line on servers/NAME (or servers/*) also matches every tool of that server.
    return (
        ikind == "tools"
        and okind == "servers"
        and (oname == ANY or (iname != ANY and oname == tool_server(iname)))
    )


class _GraphCheck:
    """Cycles and over-long chains in one role graph (``g`` or ``g2``)."""

    def __init__(self, ptype: str, rules: list[Rule]) -> None:
        self.ptype = ptype
        self.rules = rules
        self.up: dict[str, set[str]] = {}
        for rule in rules:
            child, parent = rule.values
            self.up.setdefault(child, set()).add(parent)
        self._reach: dict[str, set[str]] = {}

    def reach(self, node: str) -> set[str]:
        """Every node one or more links above ``node``."""
        found = self._reach.get(node)
        if found is None:
            found = set()
            stack = list(self.up.get(node, ()))
            while stack:
                n = stack.pop()
                if n not in found:
                    found.add(n)
                    stack.extend(self.up.get(n, ()))
            self._reach[node] = found
        return found

    def in_cycle(self, child: str, parent: str) -> bool:
        return child == parent or child in self.reach(parent)

    def issues(self) -> list[LintIssue]:
        return [*self._cycles(), *self._depth()]

    def _cycles(self) -> Iterator[LintIssue]:
        reported: set[frozenset[str]] = set()
        for rule in self.rules:
            child, parent = rule.values
            if not self.in_cycle(child, parent):
                continue
            component = frozenset(
                {child} | {n for n in self.reach(child) if child in self.reach(n)}
            )
            if component in reported:
                continue
            reported.add(component)
            path = [child, *self._path(parent, child)] if child != parent else [child, child]
            yield _error(
                rule.source,
                "cycle",
                f"`{self.ptype}` links form a cycle: " + " -> ".join(f"`{n}`" for n in path),
            )

    def _path(self, start: str, goal: str) -> list[str]:
        """The shortest chain of links from ``start`` up to ``goal`` (both included)."""
        back: dict[str, str] = {}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            if node == goal:
                break
            for parent in sorted(self.up.get(node, ())):
                if parent not in back and parent != start:
                    back[parent] = node
                    queue.append(parent)
        path = [goal]
        while path[-1] != start:
            path.append(back[path[-1]])
        return path[::-1]

    def _depth(self) -> Iterator[LintIssue]:
        """Links that sit ``MAX_HIERARCHY_LEVEL`` links above some bottom node."""
        # Longest chain below each node, over the links that are not part of a cycle
        # (those form a DAG), in topological order from the bottom nodes up.
        edges = {
            (rule.values[0], rule.values[1])
            for rule in self.rules
            if not self.in_cycle(*rule.values)
        }
        pending: dict[str, int] = {}
        above: dict[str, list[str]] = {}
        for child, parent in edges:
            pending[parent] = pending.get(parent, 0) + 1
            above.setdefault(child, []).append(parent)
        nodes = {n for edge in edges for n in edge}
        depth = {n: 0 for n in nodes}
        bottom = {n: n for n in nodes}
        ready = sorted(n for n in nodes if n not in pending)
        while ready:
            node = ready.pop()
            for parent in above.get(node, ()):
                if depth[node] + 1 > depth[parent]:
                    depth[parent], bottom[parent] = depth[node] + 1, bottom[node]
                pending[parent] -= 1
                if not pending[parent]:
                    ready.append(parent)
        limit = MAX_HIERARCHY_LEVEL - 1
        reported: set[tuple[str, str]] = set()
        for rule in self.rules:
            child, parent = rule.values
            edge = (child, parent)
            if edge in edges and edge not in reported and depth[child] == limit:
                reported.add(edge)
                yield _error(
                    rule.source,
                    "too-deep",
                    f"`{bottom[child]}` reaches `{parent}` only through {limit + 1} "
                    f"`{self.ptype}` links, and casbin follows at most {limit} "
                    f"(max hierarchy level {MAX_HIERARCHY_LEVEL}): this link is never used "
                    f"from `{bottom[child]}`",
                )
