"""/api/v1/rbac: RbacDefinitions (subjects x role bindings), behind the creator ceiling."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import Field, field_validator

from authz import RoleBinding
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
    taken,
)
from mcpd.api.deps import DbDep, PrincipalDep, RequestIdDep, RuntimeDep
from mcpd.errors import Forbidden, Invalid
from mcpd.models import RbacDefinition
from mcpd.services.policy import (
    TOKEN_RBAC_PREFIX,
    PolicyChange,
    parse_bindings,
    parse_subjects,
    require_covered,
)

router = APIRouter(prefix="/api/v1", tags=["rbac"])


class RbacIn(CamelModel):
    name: DnsName
    subjects: list[str] = Field(min_length=1, max_length=1000)
    role_bindings: list[str] = Field(min_length=1, max_length=1000)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v.startswith(TOKEN_RBAC_PREFIX):
            raise ValueError(
                f"`{TOKEN_RBAC_PREFIX}` names are reserved for the definitions that hold "
                "McpTokens' bindings; choose another name"
            )
        return v


class RbacUpdate(CamelModel):
    subjects: list[str] = Field(min_length=1, max_length=1000)
    role_bindings: list[str] = Field(min_length=1, max_length=1000)
    version: int | None = None


class RbacOut(Meta):
    subjects: list[str]
    role_bindings: list[str]
    token: bool = Field(description="true when it holds an McpToken's bindings")


def _out(r: RbacDefinition) -> RbacOut:
    return RbacOut(
        **meta(r), subjects=r.subjects, role_bindings=r.role_bindings, token=r.token_id is not None
    )


def rules_of(subjects: list[str], bindings: list[RoleBinding]) -> list:  # type: ignore[type-arg]
    return [b.to_rule(s) for s in subjects for b in bindings]


@router.get("/rbac", response_model=Page[RbacOut], response_model_by_alias=True)
def list_rbac(_: PrincipalDep, db: DbDep, limit: Limit = 100, after: After = None) -> Page[RbacOut]:
    rows, nxt = paginate(db, page_query(RbacDefinition, limit, after), limit)
    return Page[RbacOut](items=[_out(r) for r in rows], next=nxt)


def _validated(
    rt: RuntimeDep, p: PrincipalDep, subjects: list[str], bindings: list[str]
) -> tuple[list[str], list[RoleBinding]]:
    subs = parse_subjects(subjects)
    if any(s.startswith("McpToken:") for s in subs):
        raise Invalid("subjects: bind a token with `mcpctl create mcptoken --bind`, not rbac")
    parsed = parse_bindings(rt.authorizer, bindings)
    require_covered(rt.authorizer, p.subject, p.display, parsed)
    return subs, parsed


@router.post("/rbac", status_code=201, response_model=RbacOut, response_model_by_alias=True)
def create_rbac(
    body: RbacIn, p: PrincipalDep, db: DbDep, rt: RuntimeDep, rid: RequestIdDep
) -> RbacOut:
    taken(db, RbacDefinition, body.name, "rbac definition")
    subjects, bindings = _validated(rt, p, body.subjects, body.role_bindings)
    rbac = RbacDefinition(
        name=body.name,
        subjects=subjects,
        role_bindings=[str(b) for b in bindings],
        created_by=p.display,
    )
    db.add(rbac)
    change = PolicyChange()
    change.replace(db, f"rbac/{body.name}", rules_of(subjects, bindings))
    audit.record(
        db,
        p,
        action="create",
        kind="rbac",
        name=body.name,
        request_id=rid,
        detail={"subjects": subjects, "roleBindings": rbac.role_bindings},
    )
    db.commit()
    change.publish(rt.authorizer)
    return _out(rbac)


@router.get("/rbac/{name}", response_model=RbacOut, response_model_by_alias=True)
def get_rbac(name: str, _: PrincipalDep, db: DbDep) -> RbacOut:
    return _out(get_or_404(db, RbacDefinition, name, "rbac definition"))


@router.put("/rbac/{name}", response_model=RbacOut, response_model_by_alias=True)
def update_rbac(
    name: str, body: RbacUpdate, p: PrincipalDep, db: DbDep, rt: RuntimeDep, rid: RequestIdDep
) -> RbacOut:
    rbac = get_or_404(db, RbacDefinition, name, "rbac definition")
    if rbac.token_id is not None:
        raise Forbidden(
            "this definition belongs to an McpToken: revoke or delete the token instead"
        )
    check_version(rbac, body.version, "rbac definition")
    subjects, bindings = _validated(rt, p, body.subjects, body.role_bindings)
    rbac.subjects, rbac.role_bindings = subjects, [str(b) for b in bindings]
    rbac.version += 1
    change = PolicyChange()
    change.replace(db, f"rbac/{name}", rules_of(subjects, bindings))
    audit.record(
        db,
        p,
        action="update",
        kind="rbac",
        name=name,
        request_id=rid,
        detail={"subjects": subjects, "roleBindings": rbac.role_bindings},
    )
    db.commit()
    change.publish(rt.authorizer)
    return _out(rbac)


@router.delete("/rbac/{name}", status_code=204)
def delete_rbac(
    name: str, p: PrincipalDep, db: DbDep, rt: RuntimeDep, rid: RequestIdDep
) -> Response:
    rbac = get_or_404(db, RbacDefinition, name, "rbac definition")
    if rbac.token_id is not None:
        raise Forbidden(
            "this definition belongs to an McpToken: revoke or delete the token instead"
        )
    change = PolicyChange()
    change.drop(db, f"rbac/{name}")
    db.delete(rbac)
    audit.record(db, p, action="delete", kind="rbac", name=name, request_id=rid)
    db.commit()
    change.publish(rt.authorizer)
    return Response(status_code=204)
