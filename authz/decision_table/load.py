"""Reading a decision table: YAML with line numbers, checked key by key.

:func:`load_table` checks the whole document and raises
:class:`~authz.errors.DecisionTableError` naming the file, line, case and what is wrong;
the role bindings are parsed against the policy files, so a table that loads also runs.
PyYAML's safe loader is used with two changes: it refuses a key given twice in one
mapping (YAML would silently keep the last) and remembers the line each mapping and
sequence starts on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import yaml

from authz.bindings import RoleBinding
from authz.decision_table.fastyaml import DuplicateKey, Unsupported, load_fast
from authz.decision_table.model import (
    TOKEN_PREFIX,
    Case,
    DecisionTable,
    RbacMode,
    TableBinding,
    TableGroup,
    TableToken,
)
from authz.engine import Authorizer
from authz.errors import BindingError, DecisionTableError, InvalidName
from authz.policy import gc_paused
from authz.vocabulary import (
    ANY,
    KINDS,
    NO_PROJECT,
    SERVER_PARTS,
    Subject,
    check_dns_label,
    check_object_name,
    check_verb,
)

__all__ = ["load_table", "table_bindings", "token_bindings"]

_TABLE_KEYS: Final = ("description", "groups", "bindings", "tokens", "cases")
_BINDING_KEYS: Final = ("name", "subjects", "roleBindings")
_TOKEN_KEYS: Final = (
    "description",
    "project",
    "creator",
    "rbac",
    "roleBindings",
    "revoked",
    "expired",
)
_CASE_KEYS: Final = ("name", "subject", "action", "kind", "object", "project", "expect", "reason")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class _Map(dict[str, Any]):
    """A YAML mapping that remembers the line it starts on."""

    line = 0


class _Seq(list[Any]):
    """A YAML sequence that remembers the line it starts on."""

    line = 0


class _KeyError(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc]
    """PyYAML's safe loader (libyaml's parser when there is one, ~30x faster), refusing
    duplicate keys and recording line numbers (the C parser's nodes carry them too)."""


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    out = _Map()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise _KeyError(line, f"key `{key}` is not a string")
        if key in out:
            hint = (
                " (in a case, `name` labels the case and `object` names the object)"
                if key == "name"
                else ""
            )
            raise _KeyError(line, f"key `{key}` appears twice in one mapping{hint}")
        out[key] = loader.construct_object(value_node, deep=True)
    return out


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> _Seq:
    out = _Seq(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


def load_table(
    path: Path,
    *,
    policy_dir: Path | None = None,
    model_path: Path | None = None,
    authorizer: Authorizer | None = None,
) -> DecisionTable:
    """Read and check a decision table; bindings are checked against the policy files
    (or against ``authorizer``, already built over them).

    Raises :class:`DecisionTableError` (``path:line: where: what is wrong``).
    """
    with gc_paused():  # tens of thousands of acyclic objects (see gc_paused)
        return _load_table(
            path, policy_dir=policy_dir, model_path=model_path, authorizer=authorizer
        )


def _load_table(
    path: Path,
    *,
    policy_dir: Path | None,
    model_path: Path | None,
    authorizer: Authorizer | None,
) -> DecisionTable:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DecisionTableError(f"{path}: cannot read decision table: {exc}") from exc
    try:
        try:
            doc = load_fast(text, _Map, _Seq)
        except Unsupported:  # anchors, tags, merge keys...: the full loader
            doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except (_KeyError, DuplicateKey) as exc:
        raise DecisionTableError(f"{path}:{exc.line}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise DecisionTableError(f"{path}: not valid YAML: {exc}") from exc
    table = _TableReader(path).read(doc)
    if authorizer is None:
        authorizer = Authorizer(policy_dir=policy_dir, model_path=model_path)
    # Bindings parse (and so are checked) whatever the cases say.
    objects = {binding.name for _, binding in table_bindings(table, authorizer)}
    objects |= {binding.name for _, binding in token_bindings(table, authorizer)}
    unnamed = [case for case in table.cases if not case.object_given]
    if unnamed:  # every name the policy gives: only when some case could mean one
        objects |= authorizer.index.names()
    objects.discard(ANY)
    for case in unnamed:
        if case.name in objects:
            raise DecisionTableError(
                f"{case.source}: {case.label}: `name: {case.name}` labels the case, and "
                f"`{case.name}` is an object the policy names: write `object: {case.name}` "
                'to ask about it (or `object: ""` for the whole collection)'
            )
    return table


class _TableReader:
    """Turns the YAML document into a :class:`DecisionTable`, or says precisely what is wrong."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tokens: dict[str, TableToken] = {}

    def fail(self, line: int, where: str, message: str) -> DecisionTableError:
        at = f"{self.path}:{line}" if line else str(self.path)
        return DecisionTableError(f"{at}: {where}: {message}" if where else f"{at}: {message}")

    def read(self, doc: object) -> DecisionTable:
        if not isinstance(doc, _Map):
            raise self.fail(0, "", "a decision table is a mapping with keys " + _keys(_TABLE_KEYS))
        self.check_keys(doc, _TABLE_KEYS, "the table")
        description = self.string(doc, "description", "the table", default="")
        tokens_doc = doc.get("tokens", _Map())
        if not isinstance(tokens_doc, _Map):
            raise self.fail(doc.line, "`tokens`", "must map token names to tokens")
        for name, spec in tokens_doc.items():
            self.tokens[name] = self.token(name, spec, tokens_doc.line)
        groups_doc = doc.get("groups", _Map())
        if not isinstance(groups_doc, _Map):
            raise self.fail(doc.line, "`groups`", "must map `Group:<name>` to member lists")
        groups = tuple(self.group(g, m, groups_doc.line) for g, m in groups_doc.items())
        bindings_doc = doc.get("bindings", _Seq())
        if not isinstance(bindings_doc, _Seq):
            raise self.fail(doc.line, "`bindings`", "must be a list of bindings")
        bindings = tuple(self.binding(i, b, bindings_doc.line) for i, b in enumerate(bindings_doc))
        cases_doc = doc.get("cases")
        if not isinstance(cases_doc, _Seq) or not cases_doc:
            raise self.fail(doc.line, "`cases`", "a table needs a non-empty list of cases")
        cases = tuple(self.case(i, c, cases_doc.line) for i, c in enumerate(cases_doc, start=1))
        return DecisionTable(
            self.path, description, groups, bindings, tuple(self.tokens.values()), cases
        )

    # helpers

    def check_keys(self, m: _Map, allowed: tuple[str, ...], where: str) -> None:
        for key in m:
            if key not in allowed:
                raise self.fail(m.line, where, f"unknown key `{key}`; keys: {_keys(allowed)}")

    def string(self, m: _Map, key: str, where: str, *, default: str | None = None) -> str:
        value = m.get(key)
        if value is None:
            if default is None:
                raise self.fail(m.line, where, f"`{key}` is missing")
            return default
        if not isinstance(value, str):
            raise self.fail(
                m.line, where, f"`{key}` must be a string, not `{value}` (quote it in YAML)"
            )
        return value

    def flag(self, m: _Map, key: str, where: str) -> bool:
        value = m.get(key, False)
        if not isinstance(value, bool):
            raise self.fail(m.line, where, f"`{key}` must be `true` or `false`, not `{value}`")
        return value

    def strings(self, value: object, line: int, where: str, key: str) -> tuple[str, ...]:
        if not isinstance(value, _Seq) or not all(isinstance(v, str) for v in value):
            raise self.fail(line, where, f"`{key}` must be a list of strings")
        return tuple(value)

    def subject(self, text: str, line: int, where: str) -> str:
        """A subject as the engine sees it: McpToken:<name> becomes McpToken:<sha>."""
        if text.startswith(TOKEN_PREFIX):
            name = text.removeprefix(TOKEN_PREFIX)
            if name in self.tokens:
                return self.tokens[name].subject
            if not _SHA256_HEX.match(name):
                defined = ", ".join(sorted(self.tokens)) or "none"
                raise self.fail(
                    line,
                    where,
                    f"token `{name}` is not defined under `tokens` (defined: {defined}); "
                    "use `McpToken:<64 hex digits>` for a token the engine does not know",
                )
            return text
        try:
            Subject.parse(text)
        except InvalidName as exc:
            raise self.fail(line, where, str(exc)) from exc
        return text

    # sections

    def token(self, name: object, spec: object, line: int) -> TableToken:
        where = f"token `{name}`"
        if not isinstance(spec, _Map):
            raise self.fail(line, where, "must be a mapping with keys " + _keys(_TOKEN_KEYS))
        assert isinstance(name, str)  # _construct_map refuses other keys
        self.check_keys(spec, _TOKEN_KEYS, where)
        try:
            check_dns_label(name, "token name")
            project = check_dns_label(self.string(spec, "project", where), "project")
        except InvalidName as exc:
            raise self.fail(spec.line, where, str(exc)) from exc
        self.string(spec, "description", where, default="")
        creator = self.string(spec, "creator", where)
        try:
            creator_type = Subject.parse(creator).type
        except InvalidName as exc:
            raise self.fail(spec.line, where, f"`creator`: {exc}") from exc
        if creator_type != "User":
            raise self.fail(spec.line, where, f"`creator` must be a user, not `{creator}`")
        bindings = (
            self.strings(spec["roleBindings"], spec.line, where, "roleBindings")
            if "roleBindings" in spec
            else ()
        )
        rbac = self.string(spec, "rbac", where, default="")
        if rbac not in ("", "empty", "clone"):
            raise self.fail(spec.line, where, f"`rbac` must be `empty` or `clone`, not `{rbac}`")
        if rbac and bindings:
            raise self.fail(
                spec.line,
                where,
                f"has both `rbac: {rbac}` and `roleBindings`: a token is empty, a clone of "
                "its creator's bindings, or bound explicitly",
            )
        mode: RbacMode = "bind" if bindings else ("clone" if rbac == "clone" else "empty")
        return TableToken(
            name,
            project,
            creator,
            mode,
            bindings,
            self.flag(spec, "revoked", where),
            self.flag(spec, "expired", where),
            spec.line,
        )

    def group(self, group: str, members: object, line: int) -> TableGroup:
        where = f"group `{group}`"
        try:
            if Subject.parse(group).type != "Group":
                raise InvalidName(f"`{group}` is not a group: expected `Group:<name>`")
        except InvalidName as exc:
            raise self.fail(line, where, str(exc)) from exc
        found = self.strings(members, line, where, "members")
        mline = members.line if isinstance(members, _Seq) else line
        return TableGroup(
            group,
            tuple(self.subject(m, mline, where) for m in found),
            mline,
        )

    def binding(self, index: int, spec: object, line: int) -> TableBinding:
        where = f"binding {index + 1}"
        if not isinstance(spec, _Map):
            raise self.fail(line, where, "must be a mapping with keys " + _keys(_BINDING_KEYS))
        self.check_keys(spec, _BINDING_KEYS, where)
        name = self.string(spec, "name", where, default="")
        if name:
            where = f"{where} `{name}`"
        for key in ("subjects", "roleBindings"):
            if key not in spec:
                raise self.fail(spec.line, where, f"`{key}` is missing")
        subjects = self.strings(spec["subjects"], spec.line, where, "subjects")
        texts = self.strings(spec["roleBindings"], spec.line, where, "roleBindings")
        if not subjects or not texts:
            raise self.fail(spec.line, where, "needs at least one subject and one role binding")
        return TableBinding(
            tuple(self.subject(s, spec.line, where) for s in subjects),
            texts,
            spec.line,
        )

    def case(self, number: int, spec: object, line: int) -> Case:
        where = f"case {number}"
        if not isinstance(spec, _Map):
            raise self.fail(line, where, "must be a mapping with keys " + _keys(_CASE_KEYS))
        name = self.string(spec, "name", where, default="")
        if name:
            where = f"{where} `{name}`"
        self.check_keys(spec, _CASE_KEYS, where)
        subject = self.string(spec, "subject", where)
        action = self.string(spec, "action", where)
        kind = self.string(spec, "kind", where)
        obj = self.string(spec, "object", where, default="")
        project = self.string(spec, "project", where, default=NO_PROJECT)
        expect = self.string(spec, "expect", where)
        reason = spec.get("reason")
        if expect not in ("allow", "deny"):
            raise self.fail(spec.line, where, f"`expect` must be `allow` or `deny`, not `{expect}`")
        if reason is not None and (not isinstance(reason, str) or not reason):
            raise self.fail(spec.line, where, "`reason` must be a non-empty string")
        if kind != ANY and kind not in KINDS:
            raise self.fail(
                spec.line, where, f"unknown resource kind `{kind}`; kinds: {', '.join(KINDS)}"
            )
        try:
            check_verb(action)
            if obj not in ("", ANY):
                check_object_name(obj, kind if kind in SERVER_PARTS else None, asked=True)
            if project not in (NO_PROJECT, ANY):
                check_dns_label(project, "project")
        except InvalidName as exc:
            raise self.fail(spec.line, where, str(exc)) from exc
        return Case(
            number=number,
            name=name,
            subject=subject,
            decide_as=self.subject(subject, spec.line, where),
            action=action,
            kind=kind,
            object=obj,
            project=project,
            expect="allow" if expect == "allow" else "deny",
            reason=reason,
            source=f"{self.path}:{spec.line}",
            object_given="object" in spec,
        )


def _keys(keys: tuple[str, ...]) -> str:
    return ", ".join(f"`{k}`" for k in keys)


# -- the bindings, parsed against the policy ------------------------------------------------


def table_bindings(
    table: DecisionTable, authorizer: Authorizer
) -> Iterator[tuple[TableBinding, RoleBinding]]:
    """Each role binding of the table's ``bindings``, parsed against the policy's roles."""
    for i, b in enumerate(table.bindings, start=1):
        for text in b.role_bindings:
            yield b, _parse_binding(authorizer, text, f"{table.path}:{b.line}: binding {i}")


def token_bindings(
    table: DecisionTable, authorizer: Authorizer
) -> Iterator[tuple[TableToken, RoleBinding]]:
    """Each explicit role binding of the table's tokens, parsed against the policy's roles."""
    for t in table.tokens:
        for text in t.role_bindings:
            yield t, _parse_binding(authorizer, text, f"{table.path}:{t.line}: token `{t.name}`")


def _parse_binding(authorizer: Authorizer, text: str, where: str) -> RoleBinding:
    try:
        return authorizer.parse_binding(text)
    except BindingError as exc:
        raise DecisionTableError(f"{where}: {exc}") from exc
