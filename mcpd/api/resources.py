"""/api/v1/projects, /api/v1/servers and /api/v1/secrets."""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import Field, field_validator, model_validator
from sqlalchemy import Row, delete, select

from mcpd import audit
from mcpd.api.common import (
    After,
    CamelModel,
    DnsName,
    Limit,
    Meta,
    Page,
    check_version,
    get_or_404,
    meta,
    page_query,
    paginate,
    paginate_rows,
    taken,
)
from mcpd.api.deps import DbDep, PrincipalDep, RequestIdDep, RuntimeDep
from mcpd.errors import Conflict, Invalid
from mcpd.models import McpToken, Project, ProjectServer, Secret, Server
from mcpd.runtime import Runtime
from mcpd.services.policy import PolicyChange, token_rbac_name

router = APIRouter(prefix="/api/v1")


PROXY_MODELS = ("passthrough", "paginate", "summarize")

# -- projects ----------------------------------------------------------------------------


class ProxyOptions(CamelModel):
    """Settings of a project's proxy model (mcplocal applies them to tool results)."""

    page_chars: int | None = Field(default=None, ge=100, le=10_000_000)
    summarize_url: str | None = Field(
        default=None, max_length=2048, pattern=r"^https?://[^\s]+$",
        description="an OpenAI-compatible endpoint, e.g. http://vllm:8000/v1",
    )  # fmt: skip
    summarize_model: str | None = Field(default=None, max_length=255)
    summarize_max_input_chars: int | None = Field(default=None, ge=100, le=10_000_000)
    summarize_timeout: float | None = Field(default=None, gt=0, le=600)


class ProjectIn(CamelModel):
    name: DnsName
    description: str = Field(default="", max_length=2000)
    servers: list[DnsName] = Field(default_factory=list, max_length=1000)
    proxy_model: Literal["passthrough", "paginate", "summarize"] = "passthrough"
    proxy_options: ProxyOptions = Field(default_factory=ProxyOptions)

    @model_validator(mode="after")
    def _summarizer(self) -> ProjectIn:
        if self.proxy_model == "summarize" and not self.proxy_options.summarize_url:
            raise ValueError("proxyModel summarize needs proxyOptions.summarizeUrl")
        return self


class ProjectUpdate(CamelModel):
    description: str | None = Field(default=None, max_length=2000)
    servers: list[DnsName] | None = Field(default=None, max_length=1000)
    proxy_model: Literal["passthrough", "paginate", "summarize"] | None = None
    proxy_options: ProxyOptions | None = None
    version: int | None = None


class ProjectOut(Meta):
    description: str
    servers: list[str]
    proxy_model: str
    proxy_options: dict[str, Any] = Field(default_factory=dict)


def _project_out(p: Project) -> ProjectOut:
    return ProjectOut(
        **meta(p),
        description=p.description,
        servers=[s.server_name for s in p.servers],
        proxy_model=p.proxy_model,
        proxy_options=p.proxy_options or {},
    )


def _known_servers(db: DbDep, names: list[str]) -> list[str]:
    unique = sorted(set(names))
    known = set(db.scalars(select(Server.name).where(Server.name.in_(unique))))
    unknown = [n for n in unique if n not in known]
    if unknown:
        raise Invalid("servers: unknown server(s) " + ", ".join(f"`{n}`" for n in unknown))
    return unique


@router.get(
    "/projects", response_model=Page[ProjectOut], response_model_by_alias=True, tags=["projects"]
)
def list_projects(
    _: PrincipalDep, db: DbDep, limit: Limit = 100, after: After = None
) -> Page[ProjectOut]:
    rows, nxt = paginate(db, page_query(Project, limit, after), limit)
    return Page[ProjectOut](items=[_project_out(p) for p in rows], next=nxt)


@router.post(
    "/projects",
    status_code=201,
    response_model=ProjectOut,
    response_model_by_alias=True,
    tags=["projects"],
)
def create_project(body: ProjectIn, p: PrincipalDep, db: DbDep, rid: RequestIdDep) -> ProjectOut:
    taken(db, Project, body.name, "project")
    servers = _known_servers(db, body.servers)
    project = Project(
        name=body.name,
        description=body.description,
        proxy_model=body.proxy_model,
        proxy_options=body.proxy_options.model_dump(by_alias=True, exclude_none=True),
        servers=[ProjectServer(server_name=s) for s in servers],
        created_by=p.display,
    )
    db.add(project)
    audit.record(
        db,
        p,
        action="create",
        kind="projects",
        name=body.name,
        project=body.name,
        request_id=rid,
        detail={"servers": servers},
    )
    db.commit()
    return _project_out(project)


@router.get(
    "/projects/{name}", response_model=ProjectOut, response_model_by_alias=True, tags=["projects"]
)
def get_project(name: str, _: PrincipalDep, db: DbDep) -> ProjectOut:
    return _project_out(get_or_404(db, Project, name, "project"))


@router.put(
    "/projects/{name}", response_model=ProjectOut, response_model_by_alias=True, tags=["projects"]
)
def update_project(
    name: str, body: ProjectUpdate, p: PrincipalDep, db: DbDep, rt: RuntimeDep, rid: RequestIdDep
) -> ProjectOut:
    project = get_or_404(db, Project, name, "project")
    check_version(project, body.version, "project")
    if body.description is not None:
        project.description = body.description
    if body.proxy_model is not None:
        project.proxy_model = body.proxy_model
    if body.proxy_options is not None:
        project.proxy_options = body.proxy_options.model_dump(by_alias=True, exclude_none=True)
    if project.proxy_model == "summarize" and not (project.proxy_options or {}).get("summarizeUrl"):
        raise Invalid("proxyModel summarize needs proxyOptions.summarizeUrl")
    if body.servers is not None:
        project.servers = [ProjectServer(server_name=s) for s in _known_servers(db, body.servers)]
    project.version += 1
    audit.record(db, p, action="update", kind="projects", name=name, project=name, request_id=rid)
    db.commit()
    rt.project_servers.forget(name)
    return _project_out(project)


@router.delete("/projects/{name}", status_code=204, tags=["projects"])
def delete_project(
    name: str, p: PrincipalDep, db: DbDep, rt: RuntimeDep, rid: RequestIdDep
) -> Response:
    """Delete a project and, with it, its McpTokens (and their bindings)."""
    project = get_or_404(db, Project, name, "project")
    tokens = list(db.scalars(select(McpToken).where(McpToken.project_id == project.id)))
    change = PolicyChange()
    for t in tokens:
        change.drop(db, f"rbac/{token_rbac_name(t.name)}")  # definitions go by FK cascade
    shas = [t.token_sha for t in tokens]
    db.delete(project)
    audit.record(
        db,
        p,
        action="delete",
        kind="projects",
        name=name,
        project=name,
        request_id=rid,
        detail={"tokensDeleted": [t.name for t in tokens]},
    )
    db.commit()
    change.publish(rt.authorizer)
    for sha in shas:
        rt.authorizer.unregister_token(sha)
    rt.project_servers.forget(name)
    return Response(status_code=204)


# -- servers -------------------------------------------------------------------------------

_SECRET_REF = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?/[A-Za-z0-9_.-]{1,253}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,128}$")


class SecretRef(CamelModel):
    secret_ref: str = Field(description="`secret/key`")

    @field_validator("secret_ref")
    @classmethod
    def _ref(cls, v: str) -> str:
        if not _SECRET_REF.match(v):
            raise ValueError("must be `SECRET/KEY`, e.g. `github/token`")
        return v


Value = str | SecretRef


class StdioSpec(CamelModel):
    command: str = Field(min_length=1, max_length=1024)
    args: list[str] = Field(default_factory=list, max_length=256)
    env: dict[str, Value] = Field(default_factory=dict, max_length=256)

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, Value]) -> dict[str, Value]:
        for k in v:
            if not _ENV_NAME.match(k):
                raise ValueError(f"`{k}` is not a valid environment variable name")
        return v


class HttpSpec(CamelModel):
    url: str = Field(min_length=1, max_length=2048, pattern=r"^https?://[^\s]+$")
    headers: dict[str, Value] = Field(default_factory=dict, max_length=64)

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, Value]) -> dict[str, Value]:
        for k in v:
            if not _HEADER_NAME.match(k):
                raise ValueError(f"`{k}` is not a valid header name")
            if k.lower() == "authorization" and isinstance(v[k], str):
                raise ValueError("put an Authorization header in a secret and use a secretRef")
        return v


class HealthCheck(CamelModel):
    tool: str | None = Field(default=None, max_length=128, description="tool to call; default ping")
    interval_seconds: int = Field(default=30, ge=1, le=86400)
    timeout_seconds: int = Field(default=10, ge=1, le=3600)


class ServerIn(CamelModel):
    name: DnsName
    description: str = Field(default="", max_length=2000)
    transport: Literal["stdio", "http"]
    stdio: StdioSpec | None = None
    http: HttpSpec | None = None
    health_check: HealthCheck | None = None

    @model_validator(mode="after")
    def _one_transport(self) -> ServerIn:
        if self.transport == "stdio" and (self.stdio is None or self.http is not None):
            raise ValueError("a stdio server needs `stdio` {command, args, env} and no `http`")
        if self.transport == "http" and (self.http is None or self.stdio is not None):
            raise ValueError("an http server needs `http` {url, headers} and no `stdio`")
        return self


class ServerUpdate(CamelModel):
    description: str | None = Field(default=None, max_length=2000)
    stdio: StdioSpec | None = None
    http: HttpSpec | None = None
    health_check: HealthCheck | None = None
    version: int | None = None


class ServerOut(Meta):
    description: str
    transport: str
    stdio: dict[str, Any] | None = None
    http: dict[str, Any] | None = None
    health_check: dict[str, Any] | None = None


def _server_out(s: Server | Row[Any]) -> ServerOut:
    return ServerOut(
        **meta(s),
        description=s.description,
        transport=s.transport,
        stdio=s.spec if s.transport == "stdio" else None,
        http=s.spec if s.transport == "http" else None,
        health_check=s.health_check,
    )


def _refs(spec: dict[str, Any]) -> set[str]:
    values = {**spec.get("env", {}), **spec.get("headers", {})}
    return {v["secretRef"] for v in values.values() if isinstance(v, dict)}


def _check_refs(db: DbDep, spec: dict[str, Any]) -> None:
    for ref in sorted(_refs(spec)):
        name, key = ref.split("/", 1)
        secret = db.scalars(select(Secret).where(Secret.name == name)).first()
        if secret is None or key not in secret.keys:
            raise Invalid(f"secretRef `{ref}`: secret `{name}` has no key `{key}`")


def _dump(spec: StdioSpec | HttpSpec) -> dict[str, Any]:
    return spec.model_dump(by_alias=True)


@router.get(
    "/servers", response_model=Page[ServerOut], response_model_by_alias=True, tags=["servers"]
)
async def list_servers(
    _: PrincipalDep, rt: RuntimeDep, limit: Limit = 100, after: After = None
) -> Response:
    # The hot read path (bench/mcpd.py). The page is the same for every caller allowed to
    # list servers, so it is kept, serialized, until the servers table changes
    # (mcpd.changes); a miss reads plain rows rather than ORM objects, off the event loop.
    gen, body = rt.read_cache.get(Server.__tablename__, (limit, after))
    if body is None:
        body = await run_in_threadpool(_servers_page, rt, limit, after)
        rt.read_cache.put(Server.__tablename__, (limit, after), gen, body)
    return Response(body, media_type="application/json")


def _servers_page(rt: Runtime, limit: int, after: str | None) -> bytes:
    stmt = page_query(Server, limit, after, select(*Server.__table__.columns))
    with rt.sessions() as db:
        rows, nxt = paginate_rows(db, stmt, limit)
    page = Page[ServerOut](items=[_server_out(s) for s in rows], next=nxt)
    return page.model_dump_json(by_alias=True).encode()


@router.get(
    "/projects/{project}/servers",
    response_model=Page[ServerOut],
    response_model_by_alias=True,
    tags=["servers"],
)
def list_project_servers(project: str, _: PrincipalDep, db: DbDep) -> Page[ServerOut]:
    proj = get_or_404(db, Project, project, "project")
    names = [s.server_name for s in proj.servers]
    rows = db.scalars(select(Server).where(Server.name.in_(names)).order_by(Server.name))
    return Page[ServerOut](items=[_server_out(s) for s in rows])


@router.post(
    "/servers",
    status_code=201,
    response_model=ServerOut,
    response_model_by_alias=True,
    tags=["servers"],
)
def create_server(body: ServerIn, p: PrincipalDep, db: DbDep, rid: RequestIdDep) -> ServerOut:
    taken(db, Server, body.name, "server")
    spec = _dump(body.stdio or body.http)  # type: ignore[arg-type]
    _check_refs(db, spec)
    server = Server(
        name=body.name,
        description=body.description,
        transport=body.transport,
        spec=spec,
        health_check=body.health_check.model_dump(by_alias=True) if body.health_check else None,
        created_by=p.display,
    )
    db.add(server)
    audit.record(db, p, action="create", kind="servers", name=body.name, request_id=rid)
    db.commit()
    return _server_out(server)


@router.get(
    "/servers/{name}", response_model=ServerOut, response_model_by_alias=True, tags=["servers"]
)
def get_server(name: str, _: PrincipalDep, db: DbDep) -> ServerOut:
    return _server_out(get_or_404(db, Server, name, "server"))


@router.put(
    "/servers/{name}", response_model=ServerOut, response_model_by_alias=True, tags=["servers"]
)
def update_server(
    name: str, body: ServerUpdate, p: PrincipalDep, db: DbDep, rt: RuntimeDep, rid: RequestIdDep
) -> ServerOut:
    server = get_or_404(db, Server, name, "server")
    check_version(server, body.version, "server")
    new = body.stdio if server.transport == "stdio" else body.http
    other = body.http if server.transport == "stdio" else body.stdio
    if other is not None:
        raise Invalid(f"server `{name}` uses {server.transport}: its transport cannot change")
    if new is not None:
        spec = _dump(new)
        _check_refs(db, spec)
        server.spec = spec
    if body.description is not None:
        server.description = body.description
    if body.health_check is not None:
        server.health_check = body.health_check.model_dump(by_alias=True)
    server.version += 1
    audit.record(db, p, action="update", kind="servers", name=name, request_id=rid)
    db.commit()
    rt.server_changed(name)
    return _server_out(server)


@router.delete("/servers/{name}", status_code=204, tags=["servers"])
def delete_server(
    name: str, p: PrincipalDep, db: DbDep, rt: RuntimeDep, rid: RequestIdDep
) -> Response:
    server = get_or_404(db, Server, name, "server")
    db.execute(delete(ProjectServer).where(ProjectServer.server_name == name))
    db.delete(server)
    audit.record(db, p, action="delete", kind="servers", name=name, request_id=rid)
    db.commit()
    rt.server_changed(name)  # its instance is stopped before the answer
    return Response(status_code=204)


# -- secrets -------------------------------------------------------------------------------

_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,253}$")


class SecretIn(CamelModel):
    name: DnsName
    data: dict[str, str] = Field(max_length=256)

    @field_validator("data")
    @classmethod
    def _keys(cls, v: dict[str, str]) -> dict[str, str]:
        for k, val in v.items():
            if not _KEY.match(k):
                raise ValueError(f"`{k}` is not a valid key: use letters, digits, '_', '.', '-'")
            if len(val) > 65536:
                raise ValueError(f"the value of `{k}` is longer than 64 KiB")
        return v


class SecretUpdate(CamelModel):
    data: dict[str, str] = Field(max_length=256)
    version: int | None = None

    _keys = field_validator("data")(SecretIn._keys.__func__)  # type: ignore[attr-defined]


class SecretOut(Meta):
    data: dict[str, str] = Field(description="values are write-only: always `***`")


def _secret_out(s: Secret) -> SecretOut:
    return SecretOut(**meta(s), data=dict.fromkeys(s.keys, "***"))


@router.get(
    "/secrets", response_model=Page[SecretOut], response_model_by_alias=True, tags=["secrets"]
)
def list_secrets(
    _: PrincipalDep, db: DbDep, limit: Limit = 100, after: After = None
) -> Page[SecretOut]:
    rows, nxt = paginate(db, page_query(Secret, limit, after), limit)
    return Page[SecretOut](items=[_secret_out(s) for s in rows], next=nxt)


@router.post(
    "/secrets",
    status_code=201,
    response_model=SecretOut,
    response_model_by_alias=True,
    tags=["secrets"],
)
def create_secret(
    body: SecretIn, p: PrincipalDep, db: DbDep, rt: RuntimeDep, rid: RequestIdDep
) -> SecretOut:
    taken(db, Secret, body.name, "secret")
    secret = Secret(
        name=body.name,
        keys=sorted(body.data),
        ciphertext=rt.secret_box.seal(body.data),
        created_by=p.display,
    )
    db.add(secret)
    audit.record(
        db,
        p,
        action="create",
        kind="secrets",
        name=body.name,
        request_id=rid,
        detail={"keys": sorted(body.data)},
    )
    db.commit()
    rt.server_changed()  # instances using the secret restart with the new values
    return _secret_out(secret)


@router.get(
    "/secrets/{name}", response_model=SecretOut, response_model_by_alias=True, tags=["secrets"]
)
def get_secret(name: str, _: PrincipalDep, db: DbDep) -> SecretOut:
    return _secret_out(get_or_404(db, Secret, name, "secret"))


@router.put(
    "/secrets/{name}", response_model=SecretOut, response_model_by_alias=True, tags=["secrets"]
)
def update_secret(
    name: str, body: SecretUpdate, p: PrincipalDep, db: DbDep, rt: RuntimeDep, rid: RequestIdDep
) -> SecretOut:
    secret = get_or_404(db, Secret, name, "secret")
    check_version(secret, body.version, "secret")
    used = _secret_keys_in_use(db, name) - set(body.data)
    if used:
        raise Conflict(
            f"secret `{name}` keys {', '.join(sorted(used))} are used by a server's secretRef"
        )
    secret.keys = sorted(body.data)
    secret.ciphertext = rt.secret_box.seal(body.data)
    secret.version += 1
    audit.record(
        db,
        p,
        action="update",
        kind="secrets",
        name=name,
        request_id=rid,
        detail={"keys": sorted(body.data)},
    )
    db.commit()
    rt.server_changed()  # instances using the secret restart with the new values
    return _secret_out(secret)


def _secret_keys_in_use(db: DbDep, name: str) -> set[str]:
    keys = set()
    for server in db.scalars(select(Server)):
        for ref in _refs(server.spec):
            sec, key = ref.split("/", 1)
            if sec == name:
                keys.add(key)
    return keys


@router.delete("/secrets/{name}", status_code=204, tags=["secrets"])
def delete_secret(name: str, p: PrincipalDep, db: DbDep, rid: RequestIdDep) -> Response:
    secret = get_or_404(db, Secret, name, "secret")
    if _secret_keys_in_use(db, name):
        raise Conflict(f"secret `{name}` is used by a server's secretRef: change the server first")
    db.delete(secret)
    audit.record(db, p, action="delete", kind="secrets", name=name, request_id=rid)
    db.commit()
    return Response(status_code=204)
