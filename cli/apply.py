"""``mcpctl apply -f FILE|-`` and ``mcpctl delete -f FILE``: multi-document YAML manifests.

Each document is ``{apiVersion: mcpctl/v1, kind: K, metadata: {name: N}, spec: {...}}``
where ``spec`` holds the fields of the API's create body (camelCase), e.g.::

    apiVersion: mcpctl/v1
    kind: Server
    metadata: {name: time}
    spec: {transport: stdio, stdio: {command: mcp-server-time}}

``apply`` sends the whole file to mcpd's ``POST /api/v1/apply`` (restore's import, with
every document checked under the caller as the API checks it, and no ``restore`` operation
needed), which imports it in one transaction: all documents or none, in dependency order
(users, groups, secrets, servers, projects, rbac), an object that exists and matches
reported ``unchanged``, an error naming its document (``document 2 (Server `typo`): ...``).
``--dry-run`` (``=server``) has mcpd check everything and change nothing.
``mcpctl get KIND NAME -o yaml`` prints such a document, which ``apply -f`` takes back
unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Final

import typer
import yaml

from cli.errors import ERROR, INVALID, fail
from cli.output import busy
from cli.state import State
from client import NotFound

API_VERSION: Final = "mcpctl/v1"

# kind -> (collection, the spec fields of its manifest)
KINDS: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "User": ("users", ("displayName", "disabled")),
    "Group": ("groups", ("members",)),
    "ServiceAccount": ("serviceaccounts", ("description",)),
    "Secret": ("secrets", ("data", "keys")),
    "Server": ("servers", ("description", "transport", "stdio", "http", "healthCheck")),
    "Project": ("projects", ("description", "servers", "proxyModel", "proxyOptions")),
    "RbacDefinition": ("rbac", ("subjects", "roleBindings")),
}
ORDER: Final = list(KINDS)
KIND_OF: Final = {collection: kind for kind, (collection, _) in KINDS.items()}
#: what mcpd's restore says of an object, as kubectl says it
SAID: Final = {"created": "created", "updated": "configured", "unchanged": "unchanged"}


def manifest(collection: str, obj: dict[str, Any]) -> dict[str, Any] | None:
    """``obj`` (as the API returns it) as a manifest document; None for a kind that has
    none (instances, tokens, audit events). A Secret lists its key names only: the values
    are write-only, and such a document applies as ``unchanged``."""
    kind = KIND_OF.get(collection)
    if kind is None:
        return None
    spec: dict[str, Any] = {}
    for f in KINDS[kind][1]:
        if collection == "secrets":
            if f == "keys":
                spec["keys"] = sorted(obj.get("data") or {})
        elif obj.get(f) is not None:
            spec[f] = obj[f]
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": obj["name"]},
        "spec": spec,
    }


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


def read(filename: str) -> tuple[str, list[dict[str, Any]]]:
    """The text of ``filename`` (``-``: stdin) and its documents, checked (exit 3 if not)."""
    try:
        if filename == "-":
            text = sys.stdin.read()
        elif Path(filename).is_dir():  # every manifest in it, as one stream (as kubectl)
            files = sorted([*Path(filename).glob("*.yaml"), *Path(filename).glob("*.yml")])
            text = "\n---\n".join(f.read_text() for f in files)
        else:
            text = Path(filename).read_text()
    except OSError as exc:
        fail(f"cannot read {filename}: {exc}", INVALID)
    try:
        return text, parse_manifests(text, "stdin" if filename == "-" else filename)
    except ValueError as exc:
        fail(str(exc), INVALID)


def apply(
    ctx: typer.Context,
    filename: Annotated[
        str, typer.Option("-f", "--filename", help="manifest file or directory, - for stdin")
    ],
    dry_run: Annotated[
        str | None,
        typer.Option(
            "--dry-run",
            help="server (`--dry-run` alone): mcpd checks everything and changes nothing",
        ),
    ] = None,
) -> None:
    """Create or update objects from YAML manifests: all of them or none (idempotent)."""
    state: State = ctx.obj
    if dry_run not in (None, "none", "server"):
        fail(f"--dry-run `{dry_run}` is unknown: use server or none", INVALID)
    dry = dry_run == "server"
    text, docs = read(filename)
    if not docs:
        fail(f"{filename}: no documents", INVALID)
    with state.client() as c, busy(f"applying {len(docs)} document(s)"):
        result = c.restore(text, dry_run=dry, path="/apply")
    suffix = " (dry run)" if dry else ""
    for item in result["items"]:
        typer.echo(f"{item['kind'].lower()}/{item['name']} {SAID[item['outcome']]}{suffix}")


def delete_file(state: State, filename: str) -> None:
    """``delete -f``: every object of a manifest, in reverse dependency order; one that is
    already gone is reported and the rest carry on (exit 1 at the end)."""
    _, docs = read(filename)
    missing = 0
    with state.client() as c:
        for doc in reversed(docs):
            collection = KINDS[doc["kind"]][0]
            where = f"{doc['kind'].lower()}/{doc['name']}"
            try:
                c.delete(collection, doc["name"])
            except NotFound:
                typer.echo(f"error: {where} not found", err=True)
                missing += 1
                continue
            typer.echo(f"{where} deleted")
    if missing:
        raise typer.Exit(ERROR)
