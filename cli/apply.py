"""``mcpctl apply -f FILE|-``: multi-document YAML manifests, idempotent.

Each document is ``{apiVersion: mcpctl/v1, kind: K, metadata: {name: N}, spec: {...}}``
where ``spec`` holds the fields of the API's create body (camelCase), e.g.::

    apiVersion: mcpctl/v1
    kind: Server
    metadata: {name: time}
    spec: {transport: stdio, stdio: {command: mcp-server-time}}

Objects are applied in dependency order (users, groups, secrets, servers, projects,
rbac); an object that exists and matches is reported ``unchanged``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Final

import typer
import yaml

from cli.errors import INVALID, fail
from cli.output import busy
from cli.state import State
from client import McpdClient, NotFound

API_VERSION: Final = "mcpctl/v1"

# kind -> (collection, fields an update may change)
KINDS: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "User": ("users", ("displayName", "disabled")),
    "Group": ("groups", ("members",)),
    "Secret": ("secrets", ("data",)),
    "Server": ("servers", ("description", "stdio", "http", "healthCheck")),
    "Project": ("projects", ("description", "servers", "proxyModel", "proxyOptions")),
    "RbacDefinition": ("rbac", ("subjects", "roleBindings")),
}
ORDER: Final = list(KINDS)


def parse_manifests(text: str, source: str) -> list[dict[str, Any]]:
    """Every document, checked; errors name the document number and what is wrong."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid YAML: {exc}") from exc
    out = []
    for i, doc in enumerate(docs, start=1):
        where = f"{source}: document {i}"
        if not isinstance(doc, dict):
            raise ValueError(f"{where}: expected a mapping with kind, metadata and spec")
        unknown = set(doc) - {"apiVersion", "kind", "metadata", "spec"}
        if unknown:
            raise ValueError(f"{where}: unknown top-level key(s) {', '.join(sorted(unknown))}")
        if doc.get("apiVersion", API_VERSION) != API_VERSION:
            raise ValueError(f"{where}: apiVersion must be {API_VERSION}")
        kind = doc.get("kind")
        if kind not in KINDS:
            raise ValueError(f"{where}: kind `{kind}` is unknown; kinds: {', '.join(KINDS)}")
        meta = doc.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where} ({kind}): metadata.name is missing")
        spec = doc.get("spec") or {}
        if not isinstance(spec, dict):
            raise ValueError(f"{where} ({kind} {name}): spec must be a mapping")
        out.append({"kind": kind, "name": name, "spec": spec, "where": where})
    seen: set[tuple[str, str]] = set()
    for d in out:
        key = (d["kind"], d["name"])
        if key in seen:
            raise ValueError(f"{d['where']}: {d['kind']} `{d['name']}` appears twice")
        seen.add(key)
    return sorted(out, key=lambda d: ORDER.index(d["kind"]))


def _same(want: Any, have: Any) -> bool:
    """Equal, counting an absent value as equal to an empty one (the API's defaults)."""
    if isinstance(want, dict) or isinstance(have, dict):
        want, have = want or {}, have or {}
        if not isinstance(want, dict) or not isinstance(have, dict):
            return False
        return all(_same(want.get(k), have.get(k)) for k in set(want) | set(have))
    if want in (None, "", [], {}) and have in (None, "", [], {}):
        return True
    return bool(want == have)


def _differs(spec: dict[str, Any], current: dict[str, Any], fields: tuple[str, ...]) -> bool:
    for f in fields:
        if f not in spec:
            continue
        if f == "data":  # secret values are write-only: always re-send them
            return True
        want, have = spec[f], current.get(f)
        if f in ("members", "servers"):
            want, have = sorted(want or []), sorted(have or [])
        if not _same(want, have):
            return True
    return False


def apply_one(c: McpdClient, doc: dict[str, Any], dry_run: bool) -> str:
    collection, fields = KINDS[doc["kind"]]
    try:
        current = c.get(collection, doc["name"])
    except NotFound:
        if not dry_run:
            c.create(collection, {"name": doc["name"], **doc["spec"]})
        return "created"
    if not _differs(doc["spec"], current, fields):
        return "unchanged"
    if not dry_run:
        body = {f: doc["spec"][f] for f in fields if f in doc["spec"]}
        c.update(collection, doc["name"], {**body, "version": current["version"]})
    return "configured"


def apply(
    ctx: typer.Context,
    filename: Annotated[
        str, typer.Option("-f", "--filename", help="manifest file, or - for stdin")
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would change")] = False,
) -> None:
    """Create or update objects from YAML manifests (idempotent)."""
    state: State = ctx.obj
    try:
        text = sys.stdin.read() if filename == "-" else Path(filename).read_text()
    except OSError as exc:
        fail(f"cannot read {filename}: {exc}", INVALID)
    try:
        docs = parse_manifests(text, "stdin" if filename == "-" else filename)
    except ValueError as exc:
        fail(str(exc), INVALID)
    suffix = " (dry run)" if dry_run else ""
    with state.client() as c:
        for i, doc in enumerate(docs, start=1):
            with busy(f"applying {i}/{len(docs)}: {doc['kind']} {doc['name']}"):
                outcome = apply_one(c, doc, dry_run)
            typer.echo(f"{doc['kind'].lower()}/{doc['name']} {outcome}{suffix}")
