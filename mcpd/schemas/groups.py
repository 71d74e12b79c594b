"""Group bodies: named sets of users, bound to roles like a user is."""

from __future__ import annotations

from pydantic import Field

from mcpd.models import Group
from mcpd.schemas.common import CamelModel, DnsName, Meta, meta
from mcpd.schemas.users import UserName


class GroupIn(CamelModel):
    name: DnsName
    members: list[UserName] = Field(default_factory=list, max_length=10_000)


class GroupUpdate(CamelModel):
    members: list[UserName]
    version: int | None = None


class GroupOut(Meta):
    members: list[str]


def group_out(g: Group) -> GroupOut:
    return GroupOut(**meta(g), members=[m.user_name for m in g.members])


__all__ = ["GroupIn", "GroupOut", "GroupUpdate", "group_out"]
