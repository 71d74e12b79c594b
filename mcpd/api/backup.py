"""/api/v1/backup, /api/v1/restore and /api/v1/apply: the configuration as manifests.

The format is :mod:`mcpd.manifests`; what is exported is :mod:`mcpd.services.backup`,
how a restore imports it :mod:`mcpd.services.restore`. ``GET /backup[?secrets=true]``
needs the ``backup`` operation, ``POST /restore[?dryRun=true]`` the ``restore`` operation
(route table). ``POST /apply[?dryRun=true]`` (``mcpctl apply``) is the same import, all
or nothing, for any authenticated caller: it needs no operation of its own, and every
document needs what the API would ask for that object.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from mcpd import manifests
from mcpd.api.deps import CallerDep, DbDep, RuntimeDep
from mcpd.errors import Invalid
from mcpd.schemas.backup import RestoreItem, RestoreOut
from mcpd.services import backup as service
from mcpd.services import restore as restore_service

router = APIRouter(prefix="/api/v1", tags=["backup"])

YAML = "application/yaml"


@router.get(
    "/backup",
    response_class=Response,
    responses={200: {"content": {YAML: {"schema": {"type": "string"}}}}},
)
def backup(
    caller: CallerDep,
    db: DbDep,
    rt: RuntimeDep,
    secrets: Annotated[
        bool, Query(description="include secret values, in plain text (else key names only)")
    ] = False,
) -> Response:
    """The whole configuration as multi-document YAML, for `POST /restore`."""
    docs = service.backup(db=db, rt=rt, caller=caller, secrets=secrets)
    now, by = datetime.now(UTC), caller.principal.display
    header = f"mcpctl backup of mcpd, {now.isoformat(timespec='seconds')}, by {by}\n" + (
        "WARNING: this file holds secret values in plain text"
        if secrets
        else "secret values are not included: Secret documents list key names only"
    )
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    return Response(
        manifests.dump(docs, header),
        media_type=YAML,
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="mcpctl-backup-{stamp}.yaml"',
        },
    )


# -- restore ---------------------------------------------------------------------------


async def _read_body(request: Request, limit: int) -> str:
    """The manifest (``limit``: MCPD_MAX_RESTORE_BODY_BYTES, which the body-limit middleware
    enforces before this reads; checked again here, where the chunks are kept)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Invalid(f"the manifest is larger than {limit // 2**20} MiB")
        chunks.append(chunk)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid("the manifest is not UTF-8 text") from exc


async def _import(
    request: Request,
    caller: CallerDep,
    db: DbDep,
    rt: RuntimeDep,
    dry_run: bool,
    action: Literal["restore", "apply"],
) -> RestoreOut:
    text = await _read_body(request, rt.settings.max_restore_body_bytes)
    docs = await run_in_threadpool(manifests.parse, text)
    if not docs:
        raise Invalid("the manifest holds no documents")
    done = await run_in_threadpool(
        restore_service.restore,
        db=db,
        rt=rt,
        caller=caller,
        docs=docs,
        dry_run=dry_run,
        action=action,
    )
    items = [RestoreItem(**asdict(d)) for d in done]
    return RestoreOut(
        dry_run=dry_run,
        created=sum(1 for i in items if i.outcome == "created"),
        updated=sum(1 for i in items if i.outcome == "updated"),
        unchanged=sum(1 for i in items if i.outcome == "unchanged"),
        items=items,
    )


_MANIFEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {YAML: {"schema": {"type": "string"}}},
        "description": "multi-document YAML, as written by `GET /backup` or `mcpctl get -o yaml`",
    }
}
DryRun = Annotated[
    bool, Query(alias="dryRun", description="report what would change, change nothing")
]


@router.post(
    "/restore",
    response_model=RestoreOut,
    response_model_by_alias=True,
    openapi_extra=_MANIFEST_BODY,
)
async def restore(
    request: Request, caller: CallerDep, db: DbDep, rt: RuntimeDep, dry_run: DryRun = False
) -> RestoreOut:
    """Import a manifest idempotently, all or nothing; say what each object did."""
    return await _import(request, caller, db, rt, dry_run, "restore")


@router.post(
    "/apply",
    response_model=RestoreOut,
    response_model_by_alias=True,
    openapi_extra=_MANIFEST_BODY,
)
async def apply(
    request: Request, caller: CallerDep, db: DbDep, rt: RuntimeDep, dry_run: DryRun = False
) -> RestoreOut:
    """Apply a manifest idempotently, all or nothing, each document checked as the API
    would check it."""
    return await _import(request, caller, db, rt, dry_run, "apply")
