"""Manifests: the multi-document YAML of backups, restores and ``mcpctl apply -f``.

Each document is one object::

    apiVersion: mcpctl/v1          # may be left out; no other version exists
    kind: Server
    metadata: {name: time}
    spec: {transport: stdio, stdio: {command: mcp-server-time}}

``spec`` holds the fields of the API's create body for the kind (camelCase), without
``name`` (that is ``metadata.name``) and without ``version``:

* ``User``            displayName, disabled - never a password or its hash
* ``Group``           members
* ``ServiceAccount``  description - never a token or its hash (mint one after a restore)
* ``Secret``          data {key: value}; or keys [key, ...]: the names only, as in a backup
                      made without secret values (such a document never changes a value)
* ``Server``          description, transport, stdio {command, args, env} or
                      http {url, headers}, healthCheck
* ``Project``         description, servers, proxyModel, proxyOptions
* ``RbacDefinition``  subjects, roleBindings

McpTokens have no manifest: their raw value is unrecoverable, and a token's own
RbacDefinition comes and goes with the token. Documents are handled in dependency order
(:data:`ORDER`: users, groups, service accounts, secrets, servers, projects, rbac),
whatever their order
in the file. Spec values are checked with the API's own body models, so a manifest
accepts exactly what the API accepts; every error names the document (its position in
the stream, counting from 1), its kind and name, and what is wrong.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import yaml
from pydantic import BaseModel, ValidationError

from mcpd.errors import Invalid
from mcpd.schemas.groups import GroupIn
from mcpd.schemas.projects import ProjectIn
from mcpd.schemas.rbac import RbacIn
from mcpd.schemas.secrets import SecretIn
from mcpd.schemas.servers import ServerIn
from mcpd.schemas.serviceaccounts import ServiceAccountIn
from mcpd.schemas.users import UserIn

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

API_VERSION: Final = "mcpctl/v1"


@dataclass(frozen=True, slots=True)
class KindInfo:
    collection: str  # the API's plural, which is also the authorization and audit kind
    model: type[BaseModel]  # the API's create body
    fields: tuple[str, ...]  # the spec keys a manifest may give


#: Every kind a manifest may hold, in dependency order.
KINDS: Final[dict[str, KindInfo]] = {
    "User": KindInfo("users", UserIn, ("displayName", "disabled")),
    "Group": KindInfo("groups", GroupIn, ("members",)),
    "ServiceAccount": KindInfo("serviceaccounts", ServiceAccountIn, ("description",)),
    "Secret": KindInfo("secrets", SecretIn, ("data", "keys")),
    "Server": KindInfo(
        "servers", ServerIn, ("description", "transport", "stdio", "http", "healthCheck")
    ),
    "Project": KindInfo(
        "projects", ProjectIn, ("description", "servers", "proxyModel", "proxyOptions")
    ),
    "RbacDefinition": KindInfo("rbac", RbacIn, ("subjects", "roleBindings")),
}
ORDER: Final = tuple(KINDS)


@dataclass(frozen=True, slots=True)
class SecretKeys:
    """A Secret given by its key names only (a backup made without secret values)."""

    name: str
    keys: list[str]


@dataclass(frozen=True, slots=True)
class Document:
    index: int  # position in the YAML stream, from 1
    kind: str
    name: str
    body: BaseModel | SecretKeys  # the validated create body (UserIn, ServerIn, ...)

    @property
    def where(self) -> str:
        return f"document {self.index} ({self.kind} `{self.name}`)"


def _fail(problem: str, index: int | None = None, kind: str = "", name: str = "") -> Invalid:
    where = ""
    if index is not None:
        where = f"document {index}"
        if kind:
            where += f" ({kind}" + (f" `{name}`" if name else "") + ")"
        where += ": "
    extra: dict[str, Any] = {}
    if index is not None:
        extra["document"] = index
    if kind:
        extra["kind"] = kind
    if name:
        extra["name"] = name
    return Invalid(where + problem, **extra)


# -- reading ---------------------------------------------------------------------------


class _Loader(_SafeLoader):
    """The safe loader (libyaml's when available) that refuses a key given twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key `{key}` appears twice", key_node.start_mark
                )
            seen.add(key if isinstance(key, Hashable) else id(key))
        mapping: dict[Hashable, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _problems(exc: ValidationError) -> str:
    out = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"])
        field = "metadata.name" if loc == "name" else f"spec.{loc}" if loc else "spec"
        out.append(f"{field}: {str(e['msg']).removeprefix('Value error, ')}")
    return "; ".join(out)


def _name_of(index: int, kind: str, meta: Any) -> str:
    if not isinstance(meta, dict):
        raise _fail("`metadata` must be a mapping with a `name`", index, kind)
    unknown = sorted(str(k) for k in meta if k != "name")
    if unknown:
        raise _fail(f"unknown metadata key(s) {', '.join(unknown)}: only `name`", index, kind)
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise _fail("`metadata.name` is missing", index, kind)
    return name


def _body(index: int, kind: str, name: str, spec: dict[str, Any]) -> BaseModel | SecretKeys:
    info = KINDS[kind]
    unknown = sorted(str(k) for k in spec if k not in info.fields)
    if unknown:
        raise _fail(
            f"unknown spec key(s) {', '.join(unknown)}; a {kind} has " + ", ".join(info.fields),
            index,
            kind,
            name,
        )
    try:
        if kind == "Secret" and "keys" in spec:
            keys = spec["keys"]
            if "data" in spec:
                raise _fail("give either `data` or `keys`, not both", index, kind, name)
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise _fail("`spec.keys` must be a list of key names", index, kind, name)
            if len(set(keys)) != len(keys):
                raise _fail("`spec.keys` lists a key twice", index, kind, name)
            info.model.model_validate({"name": name, "data": dict.fromkeys(keys, "")})
            return SecretKeys(name, sorted(keys))
        return info.model.model_validate({"name": name, **spec})
    except ValidationError as exc:
        raise _fail(_problems(exc), index, kind, name) from None


def parse(text: str) -> list[Document]:
    """Every object of a manifest, checked, in dependency order (raises :class:`Invalid`)."""
    try:
        raw = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise _fail(f"not valid YAML: {exc}") from None
    docs: list[Document] = []
    seen: dict[tuple[str, str], int] = {}
    for index, doc in enumerate(raw, start=1):
        if doc is None:
            continue  # an empty document (only comments)
        if not isinstance(doc, dict):
            raise _fail("expected a mapping with apiVersion, kind, metadata and spec", index)
        unknown = sorted(str(k) for k in doc if k not in ("apiVersion", "kind", "metadata", "spec"))
        if unknown:
            raise _fail(f"unknown top-level key(s) {', '.join(unknown)}", index)
        kind = doc.get("kind")
        if not isinstance(kind, str) or kind not in KINDS:
            shown = f"kind `{kind}` is unknown" if kind is not None else "`kind` is missing"
            raise _fail(f"{shown}; kinds are {', '.join(ORDER)}", index)
        version = doc.get("apiVersion", API_VERSION)
        if version != API_VERSION:
            raise _fail(f"apiVersion `{version}` is unknown: use {API_VERSION}", index, kind)
        name = _name_of(index, kind, doc.get("metadata"))
        spec = doc.get("spec")
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise _fail("`spec` must be a mapping", index, kind, name)
        if (kind, name) in seen:
            raise _fail(f"the same object is document {seen[kind, name]}", index, kind, name)
        seen[kind, name] = index
        docs.append(Document(index, kind, name, _body(index, kind, name, spec)))
    return sorted(docs, key=lambda d: ORDER.index(d.kind))


# -- writing ---------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # every document stands alone
        return True


def document(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


def dump(documents: Iterable[dict[str, Any]], header: str = "") -> str:
    """Documents as multi-document YAML, after ``header`` as comment lines."""
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    text = yaml.dump_all(
        list(documents),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        explicit_start=True,
    )
    return comment + text


__all__ = [
    "API_VERSION",
    "KINDS",
    "ORDER",
    "Document",
    "KindInfo",
    "SecretKeys",
    "document",
    "dump",
    "parse",
]
