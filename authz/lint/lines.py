"""Each policy line by itself: does it parse, and does what it names exist?

:func:`read_rules` reads every ``*.csv`` file line by line and names what the parser
refused; :class:`LineCheck` checks each parsed line against the vocabulary (subjects,
kinds, names) and against the roles and operations the policy's ``g2`` lines define.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from authz.errors import InvalidName, PolicyError
from authz.lint.issues import LintIssue, bare, error, warning
from authz.policy import ALLOW, DENY, RULE_ARITY, Rule, check_rule, parse_policy_line, policy_files
from authz.vocabulary import (
    ANY,
    CRUD_VERBS,
    KINDS,
    OPERATION_PREFIX,
    ROLE_PREFIX,
    SERVER_PARTS,
    Subject,
    check_dns_label,
    check_object_name,
    check_verb,
)

__all__ = ["LineCheck", "read_rules"]


def read_rules(policy_dir: Path, issues: list[LintIssue]) -> list[Rule]:
    """Every line that parses, in file and line order; an issue for every one that does not."""
    try:
        files = policy_files(policy_dir)
    except PolicyError as exc:
        issues.append(error(str(policy_dir), "bad-policy-dir", bare(exc)))
        return []
    rules: list[Rule] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            issues.append(error(str(path), "unreadable", f"cannot read policy file: {exc}"))
            continue
        for lineno, raw in enumerate(text.splitlines(), start=1):
            source = f"{path}:{lineno}"
            try:
                rule = parse_policy_line(raw, source)
            except PolicyError as exc:
                issues.append(_parse_issue(raw, source, bare(exc)))
                continue
            if rule is not None:
                rules.append(rule)
    return rules


def _parse_issue(raw: str, source: str, message: str) -> LintIssue:
    """Name what :func:`check_rule` refused, in the order it checks."""
    ptype, *values = (part.strip() for part in raw.strip().split(","))
    if ptype not in RULE_ARITY:
        return error(source, "unknown-rule-type", message)
    if len(values) != RULE_ARITY[ptype]:
        return error(source, "wrong-arity", message)
    empty = [str(i) for i, v in enumerate(values, start=1) if not v]
    if empty:
        which = "value " + empty[0] if len(empty) == 1 else "values " + ", ".join(empty)
        return error(source, "empty-value", f"{which} after `{ptype}` is empty")
    if ptype == "p" and values[5] not in (ALLOW, DENY):
        try:  # is the effect the only thing wrong, and only its word?
            check_rule(ptype, (*values[:5], ALLOW))
            check_rule("g", (values[5], values[5]))
        except PolicyError:
            return error(source, "bad-character", message)
        return error(source, "bad-effect", message)
    return error(source, "bad-character", message)


class LineCheck:
    """What each line names: subjects, groups, kinds, names, roles, operations and verbs."""

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

    def issues(self) -> list[LintIssue]:
        out: list[LintIssue] = []
        for rule in self.rules:
            if rule.ptype == "p":
                out.extend(self._check_p(rule))
            elif rule.ptype == "g":
                out.extend(self._check_g(rule))
            else:
                out.extend(self._check_g2(rule))
        return out

    def _check_p(self, rule: Rule) -> Iterator[LintIssue]:
        sub, proj, kind, name, _, _ = rule.values
        src = rule.source
        try:
            Subject.parse(sub)
        except InvalidName as exc:
            yield error(src, "bad-subject", str(exc))
        if proj != ANY:
            try:
                check_dns_label(proj, "project")
            except InvalidName as exc:
                yield error(src, "bad-project", str(exc))
        if kind != ANY and kind not in KINDS:
            yield error(
                src, "unknown-kind", f"resource kind `{kind}` is unknown; kinds: {', '.join(KINDS)}"
            )
        if name != ANY:
            try:
                check_object_name(name, kind if kind in SERVER_PARTS else None)
            except InvalidName as exc:
                yield error(src, "bad-name", str(exc))
        yield from self._check_act(rule)

    def _check_act(self, rule: Rule) -> Iterator[LintIssue]:
        _, _, kind, name, act, _ = rule.values
        src = rule.source
        if act.startswith(ROLE_PREFIX):
            if act not in self.roles:
                yield error(
                    src,
                    "unknown-role",
                    f"role `{act}` is not defined: no `g2` line has it on its right side",
                )
        elif act.startswith(OPERATION_PREFIX):
            if act not in self.operations:
                yield error(
                    src,
                    "unknown-operation",
                    f"operation `{act}` is not defined: no `g2` line has it on its right side",
                )
            if kind != ANY or name != ANY:
                yield error(
                    src,
                    "operation-scope",
                    f"operation `{act}` is bound on `{kind}/{name}`: an operation applies to "
                    "every resource, so kind and name must be `*`",
                )
        else:
            if not _is_verb(act):
                yield error(
                    src,
                    "bad-act",
                    f"`{act}` is not a role (`role:NAME`), an operation (`action:NAME`) or a verb",
                )
                return
            unknown = "" if act in self.verbs else " (and no role or operation includes it)"
            yield warning(
                src,
                "verb-binding",
                f"`{act}` is a verb{unknown}: bind a role or operation, not a verb",
            )

    def _check_g(self, rule: Rule) -> Iterator[LintIssue]:
        child, parent = rule.values
        try:
            Subject.parse(child)
        except InvalidName as exc:
            yield error(rule.source, "bad-subject", str(exc))
        try:
            group = Subject.parse(parent)
        except InvalidName as exc:
            yield error(rule.source, "bad-group", f"{exc}; the right side of `g` is a group")
            return
        if group.type != "Group":
            yield error(
                rule.source,
                "bad-group",
                f"`{parent}` is not a group: the right side of a `g` line is `Group:<name>`",
            )

    def _check_g2(self, rule: Rule) -> Iterator[LintIssue]:
        child, parent = rule.values
        prefix = next((p for p in (ROLE_PREFIX, OPERATION_PREFIX) if parent.startswith(p)), "")
        if not prefix or not _is_verb(parent.removeprefix(prefix)):
            yield error(
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
            yield warning(
                rule.source,
                "unknown-member",
                f"`{child}` is neither a known verb, a role nor an operation ({detail})",
            )


def _is_verb(value: str) -> bool:
    try:
        check_verb(value)
    except InvalidName:
        return False
    return True
