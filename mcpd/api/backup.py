"""/api/v1/backup and /api/v1/restore: the whole configuration as manifests.

The format is :mod:`mcpd.manifests`; what is exported and how a restore imports it is
:mod:`mcpd.services.backup`. ``GET /backup[?secrets=true]`` needs the ``backup``
operation, ``POST /restore[?dryRun=true]`` the ``restore`` operation (route table).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from mcpd import manifests
from mcpd.api.deps import CallerDep, DbDep, RuntimeDep
from mcpd.errors import Invalid
from mcpd.schemas.backup import RestoreItem, RestoreOut
from mcpd.services import backup as service

router = APIRouter(prefix="/api/v1", tags=["backup"])

MAX_MANIFEST_BYTES = 16 * 1024 * 1024
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


async def _read_body(request: Request) -> str:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_MANIFEST_BYTES:
            raise Invalid(f"the manifest is larger than {MAX_MANIFEST_BYTES // 2**20} MiB")
        chunks.append(chunk)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid("the manifest is not UTF-8 text") from exc


@router.post(
    "/restore",
    response_model=RestoreOut,
    response_model_by_alias=True,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {YAML: {"schema": {"type": "string"}}},
            "description": "multi-document YAML, as written by `GET /backup`",
        }
    },
)
async def restore(
    request: Request,
    caller: CallerDep,
    db: DbDep,
    rt: RuntimeDep,
    dry_run: Annotated[
        bool, Query(alias="dryRun", description="report what would change, change nothing")
    ] = False,
) -> RestoreOut:
    """Import a manifest idempotently, all or nothing; say what each object did."""
    text = await _read_body(request)
    docs = await run_in_threadpool(manifests.parse, text)
    if not docs:
        raise Invalid("the manifest holds no documents")
    done = await run_in_threadpool(
        service.restore,
        db=db,
        rt=rt,
        caller=caller,
        docs=docs,
        dry_run=dry_run,
    )
    items = [RestoreItem(**asdict(d)) for d in done]
    return RestoreOut(
        dry_run=dry_run,
        created=sum(1 for i in items if i.outcome == "created"),
        updated=sum(1 for i in items if i.outcome == "updated"),
        unchanged=sum(1 for i in items if i.outcome == "unchanged"),
        items=items,
    )
